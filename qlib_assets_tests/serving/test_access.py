"""Access: no admin call without the token is ever accepted; prediction can require API keys."""

from pathlib import Path

import httpx

from qlib_assets.serving.server import ThreadServer
from qlib_assets_tests.serving.conftest import ADMIN_TOKEN, SPEC, Platform, serving_settings

BODIES = {
    "/admin/reload": {},
    "/admin/deploy": {"spec": SPEC, "version": "2"},
    "/admin/switch": {"spec": SPEC},
    "/admin/canary": {"spec": SPEC, "weight": 50},
}


def _admin_paths(server: ThreadServer) -> list[str]:
    contract = httpx.get(f"{server.url}/openapi.json").json()
    return sorted(p for p in contract["paths"] if p.startswith("/admin"))


def _active_version(server: ThreadServer) -> str:
    (view,) = httpx.get(f"{server.url}/v1/models").json()["specs"]
    return next(s["version"] for s in view["slots"] if s["active"])


def test_no_admin_call_without_the_token_is_accepted(platform: Platform, home: Path) -> None:
    with ThreadServer(serving_settings(home)) as server:
        paths = _admin_paths(server)
        assert paths == sorted(BODIES)
        wrong = [
            {},
            {"Authorization": "Bearer"},
            {"Authorization": "Bearer wrong-token"},
            {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
            {"Authorization": f"Basic {ADMIN_TOKEN}"},
            {"Authorization": ADMIN_TOKEN},
            {"X-Admin-Token": ADMIN_TOKEN},
        ]
        for path in paths:
            for headers in wrong:
                answer = httpx.post(f"{server.url}{path}", json=BODIES[path], headers=headers)
                assert answer.status_code in (401, 403), (path, headers, answer.status_code)
        assert _active_version(server) == platform.versions[0]  # nothing moved

        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        deploy = httpx.post(
            f"{server.url}/admin/deploy", json=BODIES["/admin/deploy"], headers=admin, timeout=120
        )
        assert deploy.status_code == 200, deploy.text
        assert _active_version(server) == platform.versions[1]


def test_without_a_configured_token_admin_is_closed_and_api_keys_guard_predictions(
    platform: Platform, home: Path
) -> None:
    settings = serving_settings(home, admin_token=None, api_keys=["key-a", "key-b"])
    with ThreadServer(settings) as server:
        for path in _admin_paths(server):
            for token in ("None", "null", ADMIN_TOKEN):
                answer = httpx.post(
                    f"{server.url}{path}",
                    json=BODIES[path],
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert answer.status_code == 403, (path, token)
        body = {"date": platform.sessions[-3].isoformat(), "instruments": ["SH600000"]}
        url = f"{server.url}/v1/predict"
        assert httpx.post(url, json=body).status_code == 401
        assert httpx.post(url, json=body, headers={"X-API-Key": "key-c"}).status_code == 401
        assert httpx.post(url, json=body, headers={"X-API-Key": "key-b"}).status_code == 200
        day = platform.sessions[-3]
        assert httpx.get(f"{server.url}/v1/signal/{day}").status_code == 401
        # Liveness, readiness and metrics stay open to the platform's probes.
        for probe in ("/health", "/ready", "/metrics"):
            assert httpx.get(f"{server.url}{probe}").status_code == 200
