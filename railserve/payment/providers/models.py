"""The simulators' own books, as a real gateway keeps them on its side.

Only the simulators (railserve/payment/providers/) read or write these tables; the rest of
RailServe asks a provider through the `Gateway` protocol (`ledger`, `query`, ...). The one
row written elsewhere is a charge's, built by its simulator (`ledger_row`) and inserted by
the attempt's start, in the attempt's own transaction.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class SimulatedCharge(Model):
    """The simulated gateway's own ledger, as a real gateway keeps one on its side.

    It lets the gateway answer "what happened to this charge?" after our process died,
    and makes refunds idempotent. It holds outcomes only, never card data.
    """

    transaction_id = fields.CharField(max_length=19, primary_key=True)
    provider = fields.CharField(max_length=20, default="simulated", db_default="simulated")
    amount = fields.BigIntField()
    currency = fields.CharField(max_length=3)
    succeeded = fields.BooleanField()
    failure_code = fields.CharField(max_length=40, null=True)
    settles_at = fields.DatetimeField()
    # The issuer will refuse every refund of this charge (test trigger: account closed).
    refunds_refused = fields.BooleanField(default=False, db_default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "simulated_charges"


class SimulatedRefund(Model):
    """The simulators' ledger of refunds: one row per time a refund is asked of them
    (`key` is the refund id and the attempt), so a retry after a refusal is a new try."""

    key = fields.CharField(max_length=40, primary_key=True)
    refund_id = fields.CharField(max_length=19)
    attempt = fields.IntField()
    provider = fields.CharField(max_length=20, default="simulated")
    transaction_id = fields.CharField(max_length=19)
    amount = fields.BigIntField()
    currency = fields.CharField(max_length=3)
    succeeded = fields.BooleanField()
    failure_reason = fields.CharField(max_length=200, null=True)
    reference = fields.CharField(max_length=40)
    settles_at = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "simulated_refunds"
        indexes = [("refund_id", "attempt"), ("transaction_id",)]
