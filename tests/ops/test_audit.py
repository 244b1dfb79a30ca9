"""GET /ops/audit: every operator action, newest first; no route changes it."""

from __future__ import annotations

from railserve.payment.models import OperatorAction, PaymentStatus
from tests.ops import seed


async def test_the_audit_lists_actions_newest_first(app, operator):
    owner = await seed.user("audit@example.com")
    first = await seed.payment(owner, await seed.booking(owner), status=PaymentStatus.PENDING)
    await operator.post(f"/ops/payments/{first.transaction_id}/reconcile", {"reason": "first look"})
    await operator.post(
        f"/ops/payments/{first.transaction_id}/cancel", {"reason": "stuck for ages"}
    )
    html = await operator.text("/ops/audit")
    assert html.index("stuck for ages") < html.index("first look")
    assert "Olga Operator" in html and f'href="/ops/payments/{first.transaction_id}"' in html
    assert '<th scope="col">Reason</th>' in html and "<caption>" in html
    assert await OperatorAction.all().count() == 2


async def test_no_route_edits_or_deletes_the_audit(app):
    for rule in app.url_map.iter_rules():
        assert not (rule.methods & {"PUT", "PATCH", "DELETE"}), rule.rule
        if rule.endpoint.startswith("ops.") and "POST" in rule.methods:
            assert rule.endpoint in {
                "ops.refund",
                "ops.reconcile",
                "ops.cancel",
                "ops.replay",
                "ops.retry_refund",
                "ops.settle_refund_offline",
            }
