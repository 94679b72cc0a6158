"""Whether a process runs inside a pod: light, so that choosing a source loads no client."""

from __future__ import annotations

from pathlib import Path

from kdoctor.settings import Settings

__all__ = ["in_cluster"]


def in_cluster(settings: Settings) -> bool:
    """Whether this process runs in a pod with a service account (Kubernetes sets the service
    variables in every pod; the token is mounted unless ``automountServiceAccountToken`` is off)."""
    token = Path(settings.kubernetes_service_account_dir) / "token"
    return bool(settings.kubernetes_service_host and settings.kubernetes_service_port) and token.is_file()
