"""Templates render synchronously, one way only, with everything Quart's context gave them."""

from __future__ import annotations

import pytest
import quart

from railserve import create_app
from railserve.templating import check_synchronous, render


async def _unread() -> int:
    return 3


@pytest.mark.parametrize("kind", ["globals", "filters", "tests"])
async def test_a_coroutine_function_in_the_templates_is_refused(settings, kind):
    app = create_app(settings)
    getattr(app.jinja_env, kind)["unread"] = _unread
    with pytest.raises(TypeError, match="'unread' is a coroutine function"):
        check_synchronous(app.jinja_env)


async def test_quart_render_template_refuses_instead_of_rendering_a_second_way(app):
    async with app.test_request_context("/"):
        with pytest.raises(RuntimeError, match=r"railserve\.templating\.render"):
            await quart.render_template("errors/page.html", status=404, message="Not found.")


async def test_render_gives_the_context_processors_and_globals(app):
    async with app.test_request_context("/help"):
        body = await render("errors/page.html", status=418, message="Short and stout.")
    assert "Short and stout." in body
    assert 'name="csrf-token" content="' in body  # a global: csrf_token()
    assert app.config["RAILSERVE"].support_email in body  # the layout processor's settings


async def test_a_flashed_message_shows_once_on_the_page_after_the_redirect(passenger, train):
    booking_id = await passenger.book(train)
    await passenger.pay(booking_id)
    response = await passenger.get(f"/payment/pay/{booking_id}")
    assert response.status_code == 303
    page = await passenger.text(response.headers["Location"])
    assert 'class="flash flash-info"' in page
    assert "is already paid." in page
    assert "is already paid." not in await passenger.text(response.headers["Location"])
