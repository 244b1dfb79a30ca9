"""Configuration: defaults, overridden by RAILSERVE_* environment variables.

One frozen object is built at start-up so that every module reads the same values and a
test can build its own without touching the environment.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

INSTANCE_DIR = Path(os.environ.get("RAILSERVE_INSTANCE", Path.cwd() / "instance"))


class ConfigError(RuntimeError):
    """The configuration cannot run: a required value is missing or malformed."""


def _default_database_url() -> str:
    return f"sqlite://{INSTANCE_DIR / 'railserve.sqlite3'}"


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=_default_database_url)
    secret_key: str = ""
    env: str = "development"
    gateway: str = "simulated"
    gateway_success_rate: float = 0.9
    gateway_delay: float = 1.5
    gateway_seed: str = "railserve"
    webhook_secret: str = ""
    payment_timeout: float = 600.0
    booking_hold: float = 900.0
    test_mode: bool | None = None
    smtp_url: str = ""
    rate_limits: bool = True
    # Requests per minute (POSTs only); see railserve/limits.py.
    rate_limit_login_per_address: int = 30
    rate_limit_login_per_account: int = 10
    rate_limit_register_per_address: int = 60
    rate_limit_payment_per_user: int = 30
    rate_limit_payment_per_address: int = 120
    sweep_interval: float = 30.0
    # A TOML file of cancellation charges replacing the defaults (railserve/payment/rules.py).
    refund_rules: str = ""
    # Refusals of one refund by the gateway before it stays `failed` for an operator.
    refund_attempts: int = 5
    currency: str = "INR"

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def show_test_triggers(self) -> bool:
        return (not self.production) if self.test_mode is None else self.test_mode

    def finalised(self) -> Settings:
        """Fill secrets for development; refuse to run production without them."""
        if self.env not in ("development", "production"):
            raise ConfigError("RAILSERVE_ENV must be 'development' or 'production'")
        if not 0.0 <= self.gateway_success_rate <= 1.0:
            raise ConfigError("RAILSERVE_GATEWAY_SUCCESS_RATE must be between 0 and 1")
        if self.refund_attempts < 1:
            raise ConfigError("RAILSERVE_REFUND_ATTEMPTS must be at least 1")
        if self.gateway_delay < 0 or self.payment_timeout <= 0 or self.booking_hold <= 0:
            raise ConfigError("delays, timeouts and holds must be positive numbers of seconds")
        for item in fields(self):
            if item.name.startswith("rate_limit_") and getattr(self, item.name) < 1:
                raise ConfigError(f"RAILSERVE_{item.name.upper()} must be at least 1 a minute")
        if self.production:
            missing = [
                name
                for name, value in (
                    ("RAILSERVE_SECRET_KEY", self.secret_key),
                    ("RAILSERVE_WEBHOOK_SECRET", self.webhook_secret),
                )
                if not value
            ]
            if missing:
                raise ConfigError(f"production needs {', '.join(missing)}")
            return self
        # Development: a random key per process would log everybody out on every restart
        # and break multi-worker sessions, so derive a stable one from the instance folder.
        return replace(
            self,
            secret_key=self.secret_key or _instance_secret("secret_key"),
            webhook_secret=self.webhook_secret or _instance_secret("webhook_secret"),
        )


def _instance_secret(name: str) -> str:
    path = INSTANCE_DIR / f".{name}"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(32)
        try:
            with path.open("x") as handle:
                handle.write(value)
        except FileExistsError:  # another worker wrote it first
            return path.read_text().strip()
        return value


def _parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"not a yes/no value: {value!r}")


def from_env(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from RAILSERVE_* variables, then explicit overrides (for tests)."""
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    for item in fields(Settings):
        raw = environ.get(f"RAILSERVE_{item.name.upper()}")
        if raw is None:
            continue
        kind = item.type
        try:
            if "bool" in kind:
                values[item.name] = _parse_bool(raw)
            elif kind == "float":
                values[item.name] = float(raw)
            elif kind == "int":
                values[item.name] = int(raw)
            else:
                values[item.name] = raw
        except ValueError as error:
            raise ConfigError(f"RAILSERVE_{item.name.upper()}: {error}") from error
    values.update(overrides)
    return Settings(**values).finalised()
