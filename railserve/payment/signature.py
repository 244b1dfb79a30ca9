"""Webhook signatures: `RailServe-Signature: t=<unix seconds>,v1=<hex>`.

The signed payload is "<t>.<raw body>" under HMAC-SHA256; several v1 values may be sent so
that a secret can be rotated without downtime.
"""

from __future__ import annotations

import hashlib
import hmac

TOLERANCE_SECONDS = 300


def sign(secret: str, body: bytes, timestamp: int) -> str:
    return f"t={timestamp},v1={_digest(secret, body, timestamp)}"


def _digest(secret: str, body: bytes, timestamp: int) -> str:
    payload = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def verify(header: str | None, body: bytes, secrets: list[str], now: float) -> bool:
    """True when one v1 value matches one secret and the timestamp is fresh."""
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > TOLERANCE_SECONDS:
        return False
    expected = [_digest(secret, body, timestamp) for secret in secrets if secret]
    # Compare every pair in constant time; never stop at the first match.
    matched = False
    for candidate in candidates:
        for digest in expected:
            matched |= hmac.compare_digest(candidate.encode(), digest.encode())
    return matched
