"""Page or partial (or JSON): decided here, once, from the request's headers."""

from __future__ import annotations

from typing import Any

from quart import Response, make_response, request

from railserve.templating import render


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def wants_event_stream() -> bool:
    """An EventSource: it renders partials into a stream, never a page."""
    return request.accept_mimetypes.best == "text/event-stream"


def wants_json() -> bool:
    accept = request.accept_mimetypes
    return accept.best == "application/json" or (
        accept["application/json"] > accept["text/html"] and not is_htmx()
    )


async def render_page_or_partial(
    page: str, partial: str, status: int = 200, **context: Any
) -> Response:
    """The full page for a browser, the partial for htmx."""
    template = partial if is_htmx() else page
    body = await render(template, **context)
    return await make_response(body, status)
