"""Money and times as people read them: Babel for RAILSERVE_LOCALE, RAILSERVE_TIMEZONE.

Storage stays in minor units and UTC; only what is shown (pages, notifications, mail)
passes through here. `configure` is called once by create_app (and the CLI) with the
settings in force, so services that write a notification need no settings of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_currency

from railserve.money import digits


@dataclass(frozen=True)
class Presentation:
    locale: str = "en_IN"
    timezone: str = "Asia/Kolkata"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


_current = Presentation()


def configure(locale: str, timezone: str) -> None:
    global _current
    _current = Presentation(locale, timezone)


def format_money(minor: int, currency: str = "INR") -> str:
    """₹1,23,450.00 for 12345000 INR in en_IN; JP¥1,250 for 1250 JPY."""
    return _money(minor, currency, _current.locale)


# Babel parses the locale's pattern and quantises a Decimal on every call (18 µs, the
# largest cost of rendering a status card); the same fares come back again and again.
@lru_cache(maxsize=4096)
def _money(minor: int, currency: str, locale: str) -> str:
    major = Decimal(minor) / 10 ** digits(currency)
    return format_currency(major, currency, locale=locale)


def format_major(major: Decimal, currency: str = "INR") -> str:
    """A configured amount in major units (cancellation rules), formatted the same way."""
    return format_currency(major, currency, locale=_current.locale)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def format_when(value: datetime | None) -> str:
    """30 Nov 2026, 14:35 IST: a stored UTC time in the configured zone."""
    if value is None:
        return ""
    return _formatted(_aware(value), "d MMM y, HH:mm zzz", _current.timezone, _current.locale)


def format_due(value: datetime) -> str:
    """12 Jan, 14:30 IST: when a part of a payment plan falls due."""
    return _formatted(_aware(value), "d MMM, HH:mm zzz", _current.timezone, _current.locale)


def format_clock(value: datetime | None) -> str:
    """14:35 IST: the time of day alone, for "held until"."""
    if value is None:
        return ""
    return _formatted(_aware(value), "HH:mm zzz", _current.timezone, _current.locale)


def zone() -> ZoneInfo:
    """The configured zone: operators' date filters are days in it, like every time shown."""
    return _current.zone


def zone_name(when: datetime | None = None) -> str:
    """The zone's short name people read beside a time ("IST")."""
    return format_datetime(
        _aware(when or datetime.now(UTC)), "zzz", tzinfo=_current.zone, locale=_current.locale
    )


def format_local(value: datetime | None, pattern: str = "HH:mm") -> str:
    """A stored UTC time in the configured zone by a Babel pattern, without the zone's name
    (for a chart's ticks and a table whose caption names the zone)."""
    if value is None:
        return ""
    return _formatted(_aware(value), pattern, _current.timezone, _current.locale)


# Babel parses the pattern and walks the zone's rules on every call (~13 µs; the pay page
# shows three times); the same departures and due times come back again and again. The
# text depends only on the instant, the pattern, the zone and the locale: the key.
@lru_cache(maxsize=4096)
def _formatted(value: datetime, pattern: str, timezone: str, locale: str) -> str:
    return format_datetime(value, pattern, tzinfo=ZoneInfo(timezone), locale=locale)
