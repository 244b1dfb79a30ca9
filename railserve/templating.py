"""Templates are rendered here, synchronously, and nowhere else.

Quart's Jinja environment is async: every block, include, loop and call in a template
becomes an async generator or an auto-await, which was ~1.9 of the pay page's ~2.5 ms of CPU
(bench/README.md). Our templates await nothing: the context processors (the one query of a
full page among them) run before rendering, and every global and filter is a plain function.
So the app's environment is a synchronous one, `render` gives a template the context Quart's
`render_template` would, and Quart's own `render_template` refuses loudly rather than
render a template a second way.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import jinja2
from quart import current_app
from quart.signals import before_render_template, template_rendered
from werkzeug.local import LocalProxy

if TYPE_CHECKING:
    from quart import Quart


class SyncTemplate(jinja2.Template):
    """A template of the synchronous environment: `render`, never `render_async`."""

    async def render_async(self, *args: Any, **kwargs: Any) -> str:
        raise RuntimeError(
            f"{self.name}: render templates with railserve.templating.render, "
            "not quart.render_template (the environment is synchronous)"
        )

    def generate_async(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"{self.name}: stream templates with railserve.templating.render, "
            "not quart.stream_template (the environment is synchronous)"
        )


class SyncEnvironment(jinja2.Environment):
    """Quart's environment (its loader, globals and filters) without `enable_async`."""

    template_class = SyncTemplate

    def __init__(self, app: Quart, **options: Any) -> None:
        options.setdefault("loader", app.create_global_jinja_loader())
        options["enable_async"] = False
        super().__init__(**options)


def check_synchronous(env: jinja2.Environment) -> None:
    """Refuse a coroutine function among the globals, filters and tests: a synchronous
    template would print its coroutine instead of its value."""
    for kind in ("globals", "filters", "tests"):
        for name, value in getattr(env, kind).items():
            # A proxy (request, session, g) is not resolved: there is no request now.
            if not isinstance(value, LocalProxy) and inspect.iscoroutinefunction(value):
                raise TypeError(
                    f"template {kind[:-1]} {name!r} is a coroutine function: templates are "
                    "rendered synchronously (railserve/templating.py); compute it before "
                    "rendering, in the view or a context processor"
                )


async def render(template_name: str, **context: Any) -> str:
    """The template rendered with the context Quart gives it (its context processors run
    first, as do the `before_render_template` / `template_rendered` signals' receivers)."""
    app = current_app._get_current_object()
    await app.update_template_context(context)
    template = app.jinja_env.get_template(template_name)
    await before_render_template.send_async(
        app, _sync_wrapper=app.ensure_async, template=template, context=context
    )
    body = template.render(context)
    await template_rendered.send_async(
        app, _sync_wrapper=app.ensure_async, template=template, context=context
    )
    return body
