"""The ASGI entry point: `hypercorn app:app`."""

from railserve import create_app

app = create_app()
