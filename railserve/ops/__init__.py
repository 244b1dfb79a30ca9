"""The operator console: every payment, refund and gateway event, seen and acted on.

One `before_request` hook guards the whole blueprint, so a route added later cannot
forget the check: anonymous visitors are sent to log in like anywhere else, and a
signed-in passenger gets 404, as if the console did not exist.
"""

from __future__ import annotations

from quart import Blueprint, g
from quart_auth import Unauthorized, current_user

from railserve.errors import NotFound
from railserve.models import Role, User

ops_bp = Blueprint("ops", __name__, url_prefix="/ops")


@ops_bp.before_request
async def operators_only() -> None:
    """Let operators in; send anonymous visitors to log in; hide the console from others."""
    if not await current_user.is_authenticated:
        raise Unauthorized()
    operator = await User.get_or_none(id=int(current_user.auth_id), role=Role.OPERATOR)
    if operator is None:
        raise NotFound()
    g.operator = operator


from railserve.ops import routes, webhooks  # noqa: E402, F401  (routes register on ops_bp)
