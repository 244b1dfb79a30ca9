"""Searching payment attempts: the filters of /ops/payments, its page, JSON and CSV.

Every page is one query with its joins plus one count, whatever its size; the CSV walks
the same filters in keyset batches, so an export never holds the whole list in memory.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from math import ceil

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from railserve import display
from railserve.bounds import EMAIL_MAX, TRANSACTION_ID
from railserve.errors import Invalid
from railserve.money import format_amount
from railserve.payment.models import Payment, PaymentMethod, PaymentStatus

PAGE_SIZE = 50
CSV_BATCH = 1000
MAX_PAGE = 10**6
GATEWAY = re.compile(r"[a-z0-9_-]{1,20}")
# A prefix this long of a transaction id or PNR finds it; shorter text matches e-mails only.
MIN_PREFIX = 4
MAX_Q = EMAIL_MAX  # an e-mail address, the longest thing searched
ID_PREFIX = re.compile(rf"[A-Z0-9]{{{MIN_PREFIX},19}}")
CSV_FIELDS = (
    "transaction_id",
    "pnr",
    "email",
    "method",
    "instrument",
    "amount",
    "currency",
    "status",
    "failure_reason",
    "refunded_amount",
    "gateway",
    "created_at",
    "completed_at",
)
# What a row needs, joined in the same query: no query per row.
_COLUMNS = {
    "id": "id",
    "transaction_id": "transaction_id",
    "pnr": "booking__pnr",
    "email": "user__email",
    "method": "method",
    "instrument": "instrument",
    "amount": "amount",
    "currency": "currency",
    "status": "status",
    "failure_reason": "failure_reason",
    "refunded_amount": "refunded_amount",
    "gateway": "gateway",
    "created_at": "created_at",
    "completed_at": "completed_at",
}


@dataclass(frozen=True)
class PaymentFilters:
    status: str = ""
    method: str = ""
    gateway: str = ""
    q: str = ""
    date_from: date | None = None
    date_to: date | None = None
    page: int = 1

    def as_args(self, **changes: object) -> dict[str, str]:
        """The filters as query parameters (empty ones left out), for links and forms."""
        values = {
            "status": self.status,
            "method": self.method,
            "gateway": self.gateway,
            "q": self.q,
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
            "page": str(self.page) if self.page > 1 else "",
        }
        values.update({k: str(v) for k, v in changes.items()})
        return {k: v for k, v in values.items() if v and not (k == "page" and v == "1")}


def parse_filters(args: Mapping[str, str]) -> PaymentFilters:
    """Read the query parameters; raise Invalid (422) naming each bad one."""
    errors: dict[str, str] = {}
    status = args.get("status", "").strip()
    if status and status not in {s.value for s in PaymentStatus}:
        errors["status"] = "Choose a status from the list."
    method = args.get("method", "").strip()
    if method and method not in {m.value for m in PaymentMethod}:
        errors["method"] = "Choose a method from the list."
    gateway = args.get("gateway", "").strip().lower()
    if gateway and not GATEWAY.fullmatch(gateway):
        errors["gateway"] = "A gateway name is 1 to 20 letters, digits, - or _."
    q = args.get("q", "").strip()
    if q and not (len(q) <= MAX_Q and q.isprintable()):
        errors["q"] = (
            f"Search by a transaction id, a PNR or part of an e-mail (up to {MAX_Q} characters)."
        )
    dates: dict[str, date | None] = {}
    for name in ("from", "to"):
        raw = args.get(name, "").strip()
        dates[name] = None
        if raw:
            try:
                dates[name] = date.fromisoformat(raw)
            except ValueError:
                errors[name] = "Use an ISO date such as 2026-11-30."
    if dates["from"] and dates["to"] and dates["from"] > dates["to"]:
        errors["to"] = "The end date is before the start date."
    raw_page = args.get("page", "").strip() or "1"
    page = int(raw_page) if raw_page.isascii() and raw_page.isdigit() else 0
    if not 1 <= page <= MAX_PAGE:
        errors["page"] = "The page is a whole number from 1."
    if errors:
        raise Invalid("Please correct the filters: " + " ".join(errors.values()), errors=errors)
    return PaymentFilters(status, method, gateway, q, dates["from"], dates["to"], page)


def filtered(filters: PaymentFilters) -> QuerySet[Payment]:
    query = Payment.all()
    if filters.status:
        query = query.filter(status=filters.status)
    if filters.method:
        query = query.filter(method=filters.method)
    if filters.gateway:
        query = query.filter(gateway=filters.gateway)
    if filters.q:
        query = query.filter(_matching(filters.q))
    # Days are the configured zone's (what an operator reads everywhere else), stored UTC.
    if filters.date_from and filters.date_from > date.min:
        start = datetime.combine(filters.date_from, time(), display.zone())
        query = query.filter(created_at__gte=start.astimezone(UTC))
    if filters.date_to and filters.date_to < date.max - timedelta(days=1):
        end = datetime.combine(filters.date_to + timedelta(days=1), time(), display.zone())
        query = query.filter(created_at__lt=end.astimezone(UTC))
    return query


def _matching(text: str) -> Q:
    """An exact id, a prefix of a transaction id or PNR, or part of an e-mail."""
    upper = text.upper()
    if TRANSACTION_ID.matches(upper):
        return Q(transaction_id=upper)
    by_email = Q(user__email__icontains=text.lower())
    if ID_PREFIX.fullmatch(upper):
        return Q(transaction_id__startswith=upper) | Q(booking__pnr__startswith=upper) | by_email
    return by_email


@dataclass(frozen=True)
class PaymentPage:
    payments: list[dict]
    page: int
    pages: int
    total: int


async def search(filters: PaymentFilters, page_size: int = PAGE_SIZE) -> PaymentPage:
    """One page of attempts, newest first: two queries whatever the page size."""
    query = filtered(filters)
    total = await query.count()
    # A page past the end shows the last page rather than "page 99 of 2".
    filters = replace(filters, page=min(filters.page, pages_of(total, page_size)))
    rows = (
        await query.order_by("-created_at", "-id")
        .offset((filters.page - 1) * page_size)
        .limit(page_size)
        .values(**_COLUMNS)
    )
    return PaymentPage(rows, filters.page, pages_of(total, page_size), total)


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def as_record(row: dict) -> dict:
    """A row as the JSON and the CSV show it: amounts as strings, times ISO 8601 UTC."""
    return {
        "transaction_id": row["transaction_id"],
        "pnr": row["pnr"],
        "email": row["email"],
        "method": str(row["method"]),
        "instrument": row["instrument"],
        "amount": format_amount(row["amount"], row["currency"]),
        "currency": row["currency"],
        "status": str(row["status"]),
        "failure_reason": row["failure_reason"],
        "refunded_amount": format_amount(row["refunded_amount"] or 0, row["currency"]),
        "gateway": row["gateway"],
        "created_at": iso(row["created_at"]),
        "completed_at": iso(row["completed_at"]),
    }


async def export_rows(filters: PaymentFilters) -> AsyncIterator[dict]:
    """Every matching attempt, newest first, fetched CSV_BATCH at a time by keyset."""
    last: tuple[datetime, int] | None = None
    while True:
        query = filtered(filters)
        if last is not None:
            created, ident = last
            query = query.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=ident))
        rows = await query.order_by("-created_at", "-id").limit(CSV_BATCH).values(**_COLUMNS)
        for row in rows:
            yield as_record(row)
        if len(rows) < CSV_BATCH:
            return
        last = (rows[-1]["created_at"], rows[-1]["id"])


def parse_page(args: Mapping[str, str]) -> int:
    raw = args.get("page", "").strip() or "1"
    page = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 7 else 0
    if not 1 <= page <= MAX_PAGE:
        message = "The page is a whole number from 1."
        raise Invalid(message, errors={"page": message})
    return page


def pages_of(total: int, page_size: int = PAGE_SIZE) -> int:
    return max(1, ceil(total / page_size))
