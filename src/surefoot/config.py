"""Settings: small frozen objects, and the only reader of ``SUREFOOT_*`` variables.

Precedence: explicit arguments, then environment variables, then defaults.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from surefoot.domain.access import Role
from surefoot.errors import ConfigError

DEFAULT_STORE_URL = "sqlite:///surefoot.db"

# Named crash points (see engine/crash.py); listed here so a bad name is a ConfigError.
CRASH_POINTS = frozenset(
    {
        "step.attempt_committed",
        "step.before_commit",
        "step.after_commit",
        "wait.suspended",
        "run.before_finish",
        "compensation.before_commit",
    }
)


@dataclass(frozen=True)
class Settings:
    """Everything an App and its workers can be tuned with."""

    store_url: str = DEFAULT_STORE_URL
    auto_migrate: bool = True
    default_queue: str = "default"
    lease_s: float = 30.0  # a dead worker's runs are taken over after this
    heartbeat_s: float = 5.0  # leases are renewed this often (keep well under lease_s)
    poll_interval_s: float = 0.2  # idle workers look for work this often
    concurrency: int = 128  # runs one worker executes at once (one thread each)
    drain_timeout_s: float = 30.0  # SIGTERM: how long to let runs reach a step boundary
    max_deliveries: int = 20  # claims without reaching a durable stop before it is poison
    # True: an idempotent step's attempt is written when it starts, as for any step (one more
    # commit per step; operators then see it running). False: written with its end.
    record_idempotent_starts: bool = False
    # An idempotent step (start not written) whose body returned within this long is quick:
    # its end may be held while the run's next steps execute, if they were quick when they
    # last ran here, and committed with the run's next write (at most 32 held). 0: every
    # step's end commits before the next step begins.
    quick_step_s: float = 0.01
    breaker_failure_threshold: int = 5  # consecutive transient failures that open a breaker
    breaker_cooldown_s: float = 30.0  # an open breaker lets one probe through after this
    create_store: bool = True  # False: refuse to open a store file that does not exist
    instant_retries: bool = False  # test switch: backoff delays become zero
    crash_at: str | None = None  # test switch: "crash.point.name[@n]" kills the process
    # observability (see docs/how-to/observe.md)
    log_format: str = "auto"  # "json", "console", or "auto": JSON unless writing to a terminal
    log_level: str = "INFO"
    # A line at INFO for each run started and each run succeeded (logger surefoot.runs).
    # Failed and cancelled runs are logged at WARNING whatever this says.
    log_each_run: bool = False
    redact_names: str = ""  # comma-separated field names whose values never appear (+ defaults)
    redact_pattern: str = ""  # a regular expression whose matches never appear (+ defaults)
    otlp_endpoint: str | None = None  # OTLP/HTTP traces endpoint; unset: no export
    service_name: str = "surefoot"  # the OpenTelemetry service.name of exported spans
    metrics_port: int = 0  # workers: serve /metrics on 127.0.0.1:PORT (0: off)
    alert_rules_path: str | None = None  # a TOML file of alert rules (servers evaluate them)
    alert_interval_s: float = 30.0  # how often servers evaluate the alert rules

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{f.name} must be a finite number, got {value}")
        if self.lease_s <= 0 or self.heartbeat_s <= 0 or self.poll_interval_s <= 0:
            raise ConfigError("lease_s, heartbeat_s and poll_interval_s must be positive")
        if self.drain_timeout_s < 0:
            raise ConfigError(f"drain_timeout_s must not be negative, got {self.drain_timeout_s}")
        if not 0 <= self.quick_step_s <= 1:
            raise ConfigError(f"quick_step_s must be between 0 and 1 s, got {self.quick_step_s}")
        if self.heartbeat_s >= self.lease_s:
            raise ConfigError(
                f"heartbeat_s ({self.heartbeat_s}) must be shorter than lease_s ({self.lease_s}),"
                " or live workers would lose their runs"
            )
        if self.concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        if self.max_deliveries < 1:
            raise ConfigError("max_deliveries must be at least 1")
        if self.breaker_failure_threshold < 1 or self.breaker_cooldown_s <= 0:
            raise ConfigError("breaker_failure_threshold must be >= 1 and breaker_cooldown_s > 0")
        if self.log_format not in ("auto", "json", "console"):
            raise ConfigError(f"log_format must be auto, json or console, got {self.log_format!r}")
        if not 0 <= self.metrics_port <= 65535 or self.alert_interval_s <= 0:
            raise ConfigError("metrics_port must be 0-65535 and alert_interval_s positive")
        if self.crash_at:
            name, _, count = self.crash_at.partition("@")
            if name not in CRASH_POINTS or (count and not count.isdigit()) or count == "0":
                raise ConfigError(
                    f"crash_at={self.crash_at!r}: expected NAME or NAME@N with N >= 1, NAME one "
                    f"of {', '.join(sorted(CRASH_POINTS))}"
                )

    def with_overrides(self, **overrides: Any) -> Settings:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(
                f"unknown setting(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _parse(name: str, raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"SUREFOOT_{name.upper()}={raw!r} is not a boolean")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"SUREFOOT_{name.upper()}={raw!r} is not an integer") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"SUREFOOT_{name.upper()}={raw!r} is not a number") from None
    return raw


def from_environment(environ: Mapping[str, str] | None = None, **explicit: Any) -> Settings:
    """Settings from explicit values, then ``SUREFOOT_<NAME>`` variables, then defaults."""
    env = os.environ if environ is None else environ
    base = Settings()
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = env.get(f"SUREFOOT_{f.name.upper()}")
        if raw is not None:
            values[f.name] = _parse(f.name, raw, getattr(base, f.name))
    values.update({k: v for k, v in explicit.items() if v is not None})
    return base.with_overrides(**values)


@dataclass(frozen=True)
class WebSettings:
    """The API and console server (``surefoot serve``). Environment: ``SUREFOOT_WEB_<NAME>``.

    OIDC sign-in is on when ``oidc_issuer``, ``oidc_client_id`` and ``oidc_client_secret``
    are all set; users it creates get ``oidc_default_role``.
    """

    insecure_no_auth: bool = False  # no sign-in at all; every page carries a warning
    session_idle_s: float = 1800.0  # a console session ends after this long unused
    session_absolute_s: float = 43200.0  # and after this long in any case
    secure_cookies: bool = False  # True behind HTTPS: cookies are sent over HTTPS only
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_default_role: Role = Role.VIEWER
    public_url: str | None = None  # how browsers reach the server (OIDC redirect URI)
    host: str = "127.0.0.1"
    port: int = 8000

    def __post_init__(self) -> None:
        for name in ("session_idle_s", "session_absolute_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds, got {value}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be between 0 and 65535, got {self.port}")
        if not isinstance(self.oidc_default_role, Role):
            try:
                object.__setattr__(self, "oidc_default_role", Role(self.oidc_default_role))
            except ValueError:
                roles = ", ".join(r.value for r in Role)
                raise ConfigError(
                    f"oidc_default_role must be one of {roles}, got {self.oidc_default_role!r}"
                ) from None


_WEB_TEXT = frozenset({"oidc_issuer", "oidc_client_id", "oidc_client_secret", "public_url"})


def web_from_environment(environ: Mapping[str, str] | None = None, **explicit: Any) -> WebSettings:
    """WebSettings from explicit values, then ``SUREFOOT_WEB_<NAME>`` variables, then
    defaults."""
    env = os.environ if environ is None else environ
    base = WebSettings()
    values: dict[str, Any] = {}
    for f in fields(WebSettings):
        raw = env.get(f"SUREFOOT_WEB_{f.name.upper()}")
        if raw is None:
            continue
        default = getattr(base, f.name)
        values[f.name] = raw if f.name in _WEB_TEXT else _parse(f"web_{f.name}", raw, default)
    values.update({k: v for k, v in explicit.items() if v is not None})
    known = {f.name for f in fields(WebSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown web setting(s): {', '.join(unknown)}")
    return WebSettings(**values)
