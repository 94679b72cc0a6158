"""``kdoctor flower``: Flower on kdoctor's Celery app, never without authentication.

Flower can revoke tasks and shut workers down; anyone who reaches it unauthenticated controls the
fleet. kdoctor refuses to start it without basic auth. Flower's own `/metrics` and `/healthcheck`
stay unauthenticated (Flower's design), so bind it to a private address.
"""

from __future__ import annotations

from kdoctor.errors import SetupError
from kdoctor.settings import Settings
from kdoctor.store.connection import ping, redis_client
from kdoctor.tasks.app import build_app


def check_credentials(basic_auth: str) -> list[str]:
    """The ``user:password`` pairs of ``basic_auth`` (comma-separated); :class:`SetupError` unless
    there is at least one and every user and password is non-empty and not just blanks."""
    users = [u for u in basic_auth.split(",") if u.strip()]
    bad = [u for u in users if ":" not in u or not u.partition(":")[0].strip() or not u.partition(":")[2].strip()]
    if not users or bad:
        raise SetupError(
            "Flower needs authentication: give --basic-auth USER:PASSWORD (or KDOCTOR_FLOWER_BASIC_AUTH), "
            "with a user name and a password that are not empty or blank; kdoctor does not run Flower open"
        )
    return users


def run_flower(settings: Settings, basic_auth: str, address: str, port: int) -> int:
    """Run Flower until stopped; ``basic_auth`` is ``user:password`` (comma-separate several)."""
    users = check_credentials(basic_auth)
    ping(redis_client(settings), settings)  # a clear error now, not Flower retrying forever
    app = build_app(settings, "flower")
    code = app.start(argv=[
        "flower", f"--basic-auth={','.join(users)}", f"--address={address}", f"--port={port}",
        # Flower's refresh inspects every worker; 1 s is too short for a thousand nodes.
        "--inspect-timeout=10000", "--purge-offline-workers=600",
    ])
    return int(code or 0)
