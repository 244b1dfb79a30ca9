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
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import argon2
from babel import Locale, UnknownLocaleError

INSTANCE_DIR = Path(os.environ.get("RAILSERVE_INSTANCE", Path.cwd() / "instance"))


class ConfigError(RuntimeError):
    """The configuration cannot run: a required value is missing or malformed."""


# argon2-cffi's own defaults: the floor for production.
PASSWORD_TIME_COST = argon2.DEFAULT_TIME_COST
PASSWORD_MEMORY_COST = argon2.DEFAULT_MEMORY_COST


def _default_database_url() -> str:
    return f"sqlite://{INSTANCE_DIR / 'railserve.sqlite3'}"


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=_default_database_url)
    secret_key: str = ""
    env: str = "development"
    # Names the gateway of the `*` route (empty: the one RAILSERVE_GATEWAY_ROUTES names).
    gateway: str = ""
    # Providers in failover order, each a module of railserve/payment/providers.
    gateways: str = "simulated,simupi"
    # Method=provider pairs; `*` is every other method.
    gateway_routes: str = "upi=simupi,*=simulated"
    # Seconds a provider is skipped after 3 charge errors in a row (per worker).
    gateway_cooldown: float = 30.0
    gateway_success_rate: float = 0.9
    gateway_delay: float = 1.5
    gateway_seed: str = "railserve"
    # Comma-separated (old,new) for rotation: the first signs, any verifies.
    webhook_secret: str = ""
    simupi_webhook_secret: str = ""
    payment_timeout: float = 600.0
    # Seconds a live stream lives; then it ends without `close` and the browser reconnects.
    stream_max_age: float = 600.0
    booking_hold: float = 900.0
    test_mode: bool | None = None
    smtp_url: str = ""
    rate_limits: bool = True
    # Where rate-limit counts live: empty = in each worker's memory; redis://… = shared.
    redis_url: str = ""
    # Requests per minute (POSTs only); see railserve/limits.py.
    rate_limit_login_per_address: int = 30
    rate_limit_login_per_account: int = 10
    rate_limit_register_per_address: int = 60
    rate_limit_payment_per_user: int = 30
    rate_limit_payment_per_address: int = 120
    sweep_interval: float = 30.0
    # A TOML file of cancellation charges replacing the defaults (railserve/payment/rules.py).
    refund_rules: str = ""
    # A TOML file of payment plans replacing the built-in ones (railserve/payment/plans.py).
    payment_plans: str = ""
    # Refusals of one refund by the gateway before it stays `failed` for an operator.
    refund_attempts: int = 5
    locale: str = "en_IN"
    timezone: str = "Asia/Kolkata"
    support_email: str = "support@railserve.example"
    support_phone: str = "+91 80 4718 2000"
    # argon2id cost of new password hashes (argon2-cffi's defaults, RFC 9106's low-memory
    # choice); production refuses anything cheaper. The test suite lowers both.
    password_time_cost: int = PASSWORD_TIME_COST
    password_memory_cost: int = PASSWORD_MEMORY_COST  # KiB
    currency: str = "INR"
    # Bearer token that may read /metrics besides signed-in operators (empty: operators only).
    metrics_token: str = ""
    # `json` or `text`; empty: text in development, json in production.
    log_format: str = ""

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def log_lines(self) -> str:
        """`json` or `text`: RAILSERVE_LOG_FORMAT, else text in development, json in production."""
        return self.log_format or ("json" if self.production else "text")

    @property
    def webhook_secrets(self) -> list[str]:
        return _secret_list(self.webhook_secret)

    @property
    def simupi_webhook_secrets(self) -> list[str]:
        return _secret_list(self.simupi_webhook_secret)

    @property
    def gateway_names(self) -> list[str]:
        """Configured providers in failover order, with every routed one included."""
        names = [name.strip() for name in self.gateways.split(",") if name.strip()]
        for name in self.routes.values():
            if name not in names:
                names.append(name)
        return names

    @property
    def routes(self) -> dict[str, str]:
        """Method → provider; `*` for the rest (RAILSERVE_GATEWAY, when set, names it)."""
        routes: dict[str, str] = {}
        for pair in self.gateway_routes.split(","):
            if not pair.strip():
                continue
            method, sep, name = pair.partition("=")
            if not (sep and method.strip() and name.strip()):
                raise ConfigError(f"RAILSERVE_GATEWAY_ROUTES: {pair!r} is not method=gateway")
            routes[method.strip()] = name.strip()
        if self.gateway:
            routes["*"] = self.gateway
        routes.setdefault("*", "simulated")
        return routes

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
        if self.stream_max_age <= 0:
            raise ConfigError("RAILSERVE_STREAM_MAX_AGE must be more than 0 seconds")
        if self.gateway_delay < 0 or self.payment_timeout <= 0 or self.booking_hold <= 0:
            raise ConfigError("delays, timeouts and holds must be positive numbers of seconds")
        self._check_presentation()
        self._check_payment_plans()
        if self.log_format not in ("", "json", "text"):
            raise ConfigError("RAILSERVE_LOG_FORMAT must be 'json' or 'text'")
        if self.gateway_cooldown < 0:
            raise ConfigError("RAILSERVE_GATEWAY_COOLDOWN must not be negative")
        if not self.gateway_names:
            raise ConfigError("RAILSERVE_GATEWAYS must name at least one gateway")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("RAILSERVE_REDIS_URL must be a redis://, rediss:// or unix:// URL")
        for item in fields(self):
            if item.name.startswith("rate_limit_") and getattr(self, item.name) < 1:
                raise ConfigError(f"RAILSERVE_{item.name.upper()} must be at least 1 a minute")
        if (
            self.password_time_cost < 1
            or self.password_memory_cost < 8 * argon2.DEFAULT_PARALLELISM
        ):
            raise ConfigError(
                "RAILSERVE_PASSWORD_TIME_COST / _MEMORY_COST are too small for argon2"
            )
        if self.production and (
            self.password_time_cost < PASSWORD_TIME_COST
            or self.password_memory_cost < PASSWORD_MEMORY_COST
        ):
            raise ConfigError(
                f"production hashes passwords at least at argon2's defaults (time cost "
                f"{PASSWORD_TIME_COST}, memory cost {PASSWORD_MEMORY_COST} KiB)"
            )
        if self.production:
            missing = [
                name
                for name, value in (
                    ("RAILSERVE_SECRET_KEY", self.secret_key),
                    ("RAILSERVE_WEBHOOK_SECRET", self.webhook_secret),
                    (
                        "RAILSERVE_SIMUPI_WEBHOOK_SECRET",
                        self.simupi_webhook_secret or "simupi" not in self.gateway_names,
                    ),
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
            simupi_webhook_secret=(
                self.simupi_webhook_secret or _instance_secret("simupi_webhook_secret")
            ),
        )

    def _check_payment_plans(self) -> None:
        # Imported here: the payment package imports this module.
        from railserve.payment.plans import PlanError, load_plans

        try:
            load_plans(self.payment_plans)
        except PlanError as error:
            raise ConfigError(f"RAILSERVE_PAYMENT_PLANS ({self.payment_plans}): {error}") from None

    def _check_presentation(self) -> None:
        try:
            Locale.parse(self.locale)
        except (ValueError, UnknownLocaleError):
            raise ConfigError(f"RAILSERVE_LOCALE: unknown locale {self.locale!r}") from None
        try:
            ZoneInfo(self.timezone)
        except (ValueError, ZoneInfoNotFoundError):
            raise ConfigError(f"RAILSERVE_TIMEZONE: unknown time zone {self.timezone!r}") from None


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


def _secret_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


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
