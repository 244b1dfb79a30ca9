"""RailServe remembers which functions are coroutine functions; sync ones still run."""

from __future__ import annotations

import threading

from railserve import create_app


async def test_coroutine_functions_are_returned_as_they_are(settings):
    app = create_app(settings)

    async def handler() -> str:
        return "async"

    for _ in range(2):  # the second answer comes from memory
        assert app.ensure_async(handler) is handler


async def test_sync_functions_still_run_off_the_loop(settings):
    app = create_app(settings)
    loop_thread = threading.get_ident()

    def blocking() -> int:
        return threading.get_ident()

    for _ in range(2):
        wrapped = app.ensure_async(blocking)
        assert wrapped is not blocking
        assert await wrapped() != loop_thread


async def test_unhashable_callables_are_still_checked(settings):
    app = create_app(settings)

    class Unhashable:
        __hash__ = None

        def __call__(self) -> str:
            return "called"

    wrapped = app.ensure_async(Unhashable())
    assert await wrapped() == "called"
