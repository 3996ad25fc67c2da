"""One way to tell people: a JSON webhook and/or an SMTP email per alert.

Every channel is tried; a channel that fails is reported in the result instead of raising, so
a broken mail server never hides the webhook alert (or fails the sensor that sent it).
"""

import json
import smtplib
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Literal

from qlib_assets.operations.config import AlertSettings

Severity = Literal["info", "warning", "error"]


@dataclass(frozen=True)
class Alert:
    source: str  # run_failure, asset_check, drift, decay, budget
    title: str
    body: str
    severity: Severity = "error"
    details: dict[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


@dataclass(frozen=True)
class Delivery:
    channel: str
    ok: bool
    error: str | None = None


def send_webhook(url: str, alert: Alert, timeout: float) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(asdict(alert), default=str).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if response.status >= 300:
            raise OSError(f"webhook {url} answered HTTP {response.status}")


def send_email(settings: AlertSettings, alert: Alert) -> None:
    assert settings.smtp_host is not None
    message = EmailMessage()
    message["Subject"] = f"[qlib-assets {alert.severity}] {alert.title}"
    message["From"] = settings.email_from
    message["To"] = ", ".join(settings.email_to)
    details = json.dumps(alert.details, indent=2, default=str) if alert.details else ""
    message.set_content(f"{alert.body}\n\nsource: {alert.source}\nat: {alert.at}\n\n{details}")
    with smtplib.SMTP(
        settings.smtp_host, settings.smtp_port, timeout=settings.timeout_seconds
    ) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password or "")
        smtp.send_message(message)


def notify(settings: AlertSettings, alert: Alert) -> list[Delivery]:
    """Send ``alert`` on every configured channel; one Delivery per channel."""
    deliveries = []
    if settings.webhook_url:
        try:
            send_webhook(settings.webhook_url, alert, settings.timeout_seconds)
            deliveries.append(Delivery("webhook", True))
        except OSError as exc:
            deliveries.append(Delivery("webhook", False, f"{type(exc).__name__}: {exc}"))
    if settings.smtp_host and settings.email_to:
        try:
            send_email(settings, alert)
            deliveries.append(Delivery("email", True))
        except (OSError, smtplib.SMTPException) as exc:
            deliveries.append(Delivery("email", False, f"{type(exc).__name__}: {exc}"))
    return deliveries
