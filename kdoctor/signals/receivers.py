"""Who is notified: the receivers file (``KDOCTOR_NOTIFY_FILE``).

::

    reportUrl: https://kdoctor.example.com/reports/{id}   # optional: the link in every message
    receivers:
      - name: oncall                 # names the receiver in logs and metrics
        type: alertmanager           # webhook | slack | alertmanager
        urlFile: /etc/kdoctor/notify/alertmanager-url   # exactly one of url, urlEnv, urlFile
        bearerTokenEnv: AM_TOKEN     # optional: bearerToken, bearerTokenEnv or bearerTokenFile
        tasks: ["NetReach/*"]        # optional: <kind>/<name> patterns (fnmatch); default every task
        timeoutSeconds: 5            # per attempt (connect and read)
        retries: 2                   # attempts after the first, with backoff (0.5 s, 1 s, 2 s, … ≤ 5 s)

Secrets (URLs carry Slack's token, Alertmanager's may carry a password) come from this file, the
environment or files it names, never from a spec or a report: a spec is seen by everyone who can
submit one. The file itself is read within the same bounds as a task file (a regular UTF-8 file
of at most 1 MiB) and every mistake names its field.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from kdoctor.errors import SetupError, SpecError
from kdoctor.specs.reading import load_yaml, read_file

__all__ = ["NotifyConfig", "Receiver", "load"]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class Receiver(_Model):
    """One place notifications go."""

    name: str = Field(min_length=1, max_length=100)
    type: Literal["webhook", "slack", "alertmanager"]
    url: str = ""
    url_env: str = ""
    url_file: str = ""
    bearer_token: str = ""
    bearer_token_env: str = ""
    bearer_token_file: str = ""
    tasks: tuple[str, ...] = ("*",)
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    retries: int = Field(default=2, ge=0, le=10)

    @model_validator(mode="after")
    def _one_url(self) -> Receiver:
        given = [f for f in ("url", "url_env", "url_file") if getattr(self, f)]
        if len(given) != 1:
            raise ValueError("give exactly one of url, urlEnv, urlFile")
        tokens = [f for f in ("bearer_token", "bearer_token_env", "bearer_token_file") if getattr(self, f)]
        if len(tokens) > 1:
            raise ValueError("give at most one of bearerToken, bearerTokenEnv, bearerTokenFile")
        if self.type == "slack" and tokens:
            raise ValueError("a Slack incoming webhook takes no bearer token (its URL is the secret)")
        return self

    def wants(self, task: str) -> bool:
        """Whether this receiver is told about ``task`` (``<kind>/<name>``)."""
        return any(fnmatch.fnmatchcase(task, pattern) for pattern in self.tasks)

    def resolved_url(self) -> str:
        """The URL, read from the environment or its file now (so a rotated Secret is picked up)."""
        return _secret(self.url, self.url_env, self.url_file, f"receiver {self.name}: url")

    def token(self) -> str:
        """The bearer token, or '' for none."""
        if not (self.bearer_token or self.bearer_token_env or self.bearer_token_file):
            return ""
        return _secret(self.bearer_token, self.bearer_token_env, self.bearer_token_file,
                       f"receiver {self.name}: bearer token")


class NotifyConfig(_Model):
    """The receivers file."""

    report_url: str = Field(default="", description="Link to a report; {id} is replaced by its id.")
    receivers: tuple[Receiver, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> NotifyConfig:
        names = [r.name for r in self.receivers]
        if len(set(names)) != len(names):
            raise ValueError("receiver names must be unique")
        return self

    def link(self, report_id: str) -> str:
        """The report's link, or '' when no ``reportUrl`` is configured."""
        return self.report_url.replace("{id}", report_id) if self.report_url else ""


def _secret(value: str, env: str, path: str, what: str) -> str:
    if value:
        return value
    if env:
        found = os.environ.get(env, "").strip()
        if not found:
            raise SetupError(f"{what}: the environment variable {env} is not set")
        return found
    try:
        found = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SetupError(f"{what}: cannot read {path} ({exc.__class__.__name__})") from None
    if not found:
        raise SetupError(f"{what}: {path} is empty")
    return found


def load(path: str) -> NotifyConfig:
    """Read and check the receivers file; :class:`SetupError` names what is wrong (every secret
    it refers to is read once here, so a missing variable or file is found at start)."""
    try:
        data = load_yaml(read_file(Path(path), "notify file"), path, "notify file")
    except SpecError as exc:
        raise SetupError(str(exc)) from None
    try:
        config = NotifyConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors())
        raise SetupError(f"notify file {path}: {problems}") from None
    for receiver in config.receivers:
        receiver.resolved_url()
        receiver.token()
    return config
