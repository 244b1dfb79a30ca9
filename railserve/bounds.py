"""What a well-formed input is: each length and identifier format, defined once.

Forms, the console's actions, the command line and the templates' `minlength`/`maxlength`
read these, so a limit and the words that state it cannot drift apart.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass
from functools import cached_property

from railserve.errors import NotFound


@dataclass(frozen=True)
class Length:
    """Characters a text field takes, both ends included."""

    min: int
    max: int

    def fits(self, text: str) -> bool:
        return self.min <= len(text) <= self.max

    @property
    def words(self) -> str:
        """The range as messages state it: "3 to 300"."""
        return f"{self.min} to {self.max}"


REASON = Length(3, 300)  # an operator's reason, a train cancellation's
NAME = Length(1, 60)  # a passenger's, an account holder's, the name on a card
PASSWORD = Length(8, 128)
REFERENCE = Length(1, 64)  # the reference of money returned another way (a transfer)
EMAIL_MAX = 254  # the longest address SMTP carries (RFC 5321's path, less its brackets)

# Width of the reason, detail and message columns: audit text longer than this is clipped.
TEXT_COLUMN = 300


def clip(text: str) -> str:
    """Audit text cut to fit its column."""
    return text[:TEXT_COLUMN]


@dataclass(frozen=True)
class Identifier:
    """A random identifier: a fixed prefix, then `length` characters of `alphabet`."""

    prefix: str
    length: int
    alphabet: str

    def new(self) -> str:
        """Uniform over the alphabet: random bytes, each kept only below the largest multiple
        of the alphabet's size (so no character is likelier), then taken modulo that size;
        one call for the randomness instead of one per character."""
        size = len(self.alphabet)
        below = 256 - 256 % size
        drawn: list[str] = []
        while len(drawn) < self.length:
            extra = secrets.token_bytes(self.length + 8)
            drawn += [self.alphabet[byte % size] for byte in extra if byte < below]
        return self.prefix + "".join(drawn[: self.length])

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(f"{re.escape(self.prefix)}[{re.escape(self.alphabet)}]{{{self.length}}}")

    def matches(self, text: str) -> bool:
        return self.pattern.fullmatch(text) is not None


TRANSACTION_ID = Identifier("TXN", 16, string.ascii_uppercase + string.digits)
REFUND_ID = Identifier("RFD", 16, string.ascii_uppercase + string.digits)
# No digits 0 or 1: a PNR is read aloud and typed from paper, where they pass for O and I.
PNR = Identifier("", 10, string.ascii_uppercase + "23456789")


def exact_transaction_id(text: str) -> str:
    """`text` if it is a transaction id, else NotFound: a malformed id in a URL is never
    looked up (the passenger's pages and the operator's console answer alike)."""
    if not TRANSACTION_ID.matches(text):
        raise NotFound("No such payment.")
    return text
