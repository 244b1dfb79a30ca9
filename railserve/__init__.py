"""RailServe: train bookings whose heart is payments.

`create_app` (railserve/application.py) builds the web app. It is imported on first use,
not with the package: the `railserve` console script, the sweep and every module that
imports a sibling (`from railserve import db`) start without loading Quart and every
blueprint (`railserve --help` took ~0.9 s, most of it that import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from railserve.application import RailServe, create_app

__all__ = ["RailServe", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from railserve import application

        return getattr(application, name)
    raise AttributeError(f"module 'railserve' has no attribute {name!r}")
