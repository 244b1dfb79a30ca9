"""The router's answers for names and refunds it does not know."""

from __future__ import annotations

import pytest

from railserve.errors import NotFound
from railserve.payment.providers.router import unavailable_message


async def test_an_unconfigured_gateway_is_404_and_an_unknown_refund_unknown(app):
    gateways = app.extensions["railserve.gateways"]
    with pytest.raises(NotFound, match="No payment gateway 'nope' is configured"):
        gateways.gateway_for("nope")
    # A refund RailServe has no row for is asked of the default gateway, which knows nothing.
    assert (await gateways.query_refund("RFD0000000000000000")).state == "unknown"


def test_the_unavailable_message_names_an_unknown_method_as_given():
    """A method the app does not know is still named, with the way out."""
    message = unavailable_message("crypto")
    assert (
        message.startswith("Payments by crypto are unavailable")
        and "Nothing was charged" in message
    )
