"""Remembered cookie verification refuses exactly what itsdangerous refuses."""

from __future__ import annotations

import time

import pytest
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from railserve.security import VerifiedCookies

SIGNER = URLSafeTimedSerializer("a-secret", salt="test")


def test_a_verified_cookie_is_remembered_and_gives_the_same_payload():
    cache = VerifiedCookies()
    value = SIGNER.dumps({"csrf_token": "t"})
    assert cache.load(SIGNER, "s", value, 60) == {"csrf_token": "t"}
    assert cache.load(SIGNER, "s", value, 60) == {"csrf_token": "t"}
    assert len(cache.entries) == 1


def test_a_tampered_or_foreign_cookie_is_refused_and_not_remembered():
    cache = VerifiedCookies()
    value = SIGNER.dumps("42")
    with pytest.raises(BadSignature):
        # Change the payload, not the signature's last character: that one may carry
        # only padding bits, and a "tampered" copy would then still verify.
        cache.load(SIGNER, "s", ("x" if value[0] != "x" else "y") + value[1:], 60)
    other = URLSafeTimedSerializer("another-secret", salt="test")
    with pytest.raises(BadSignature):
        cache.load(other, "other", value, 60)
    assert not cache.entries


def test_a_remembered_cookie_still_expires(monkeypatch):
    cache = VerifiedCookies()
    value = SIGNER.dumps("42")
    assert cache.load(SIGNER, "s", value, 60) == "42"
    later = time.time() + 120
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(SignatureExpired):
        cache.load(SIGNER, "s", value, 60)


def test_mutable_payloads_are_not_remembered():
    cache = VerifiedCookies()
    value = SIGNER.dumps({"_flashes": [["info", "hi"]]})
    assert cache.load(SIGNER, "s", value, 60) == {"_flashes": [["info", "hi"]]}
    assert not cache.entries
