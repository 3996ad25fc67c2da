"""The notifier against a real HTTP receiver and a real SMTP server on loopback."""

from qlib_assets.operations.config import AlertSettings
from qlib_assets.operations.notifier import Alert, notify
from qlib_assets_tests.operations.conftest import Inbox, MailBox


def test_alert_reaches_webhook_and_mailbox(webhook: Inbox, smtp_server: MailBox) -> None:
    settings = AlertSettings(
        webhook_url=webhook.url,
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        email_to=["ops@example.org"],
    )
    alert = Alert("run_failure", "run 1234 failed", "boom", details={"run_id": "1234"})
    deliveries = notify(settings, alert)
    assert [(d.channel, d.ok) for d in deliveries] == [("webhook", True), ("email", True)]
    assert webhook.received[0]["title"] == "run 1234 failed"
    assert webhook.received[0]["details"] == {"run_id": "1234"}
    message = smtp_server.messages[0]
    assert message["Subject"] == "[qlib-assets error] run 1234 failed"
    assert message["To"] == "ops@example.org"
    assert "boom" in message.get_payload()


def test_a_dead_channel_is_reported_and_the_other_still_delivers(smtp_server: MailBox) -> None:
    settings = AlertSettings(
        webhook_url="http://127.0.0.1:9/nothing-listens",
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        email_to=["ops@example.org"],
        timeout_seconds=2,
    )
    deliveries = notify(settings, Alert("budget", "held", "over budget", severity="warning"))
    assert not deliveries[0].ok and deliveries[0].channel == "webhook"
    assert deliveries[0].error
    assert deliveries[1].ok
    assert len(smtp_server.messages) == 1


def test_no_channel_configured_sends_nothing() -> None:
    assert notify(AlertSettings(), Alert("run_failure", "t", "b")) == []
