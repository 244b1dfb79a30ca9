"""Read a server-sent event stream, in-process (Quart's test connection) or over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx

from tests.support.waiting import PATIENCE

EVENT_STREAM = {"Accept": "text/event-stream"}


@dataclass(frozen=True)
class Event:
    name: str  # "status", "close", or "comment" for a `: ping` line
    data: str


class EventReader:
    """Turns chunks of bytes, however they are cut, into events."""

    def __init__(self, receive: Callable[[], Awaitable[bytes]]) -> None:
        self._receive = receive
        self._buffer = ""
        self._ready: list[Event] = []

    async def next(self, timeout: float = PATIENCE) -> Event:
        """The next event; TimeoutError if none comes within `timeout` seconds."""
        async with asyncio.timeout(timeout):
            while not self._ready:
                chunk = await self._receive()
                if not chunk:
                    raise EOFError("the stream ended")
                self._buffer += chunk.decode()
                while "\n\n" in self._buffer:
                    block, self._buffer = self._buffer.split("\n\n", 1)
                    self._ready.append(_parse(block))
            return self._ready.pop(0)

    async def next_named(self, name: str, timeout: float = PATIENCE) -> Event:
        """The next event called `name`, skipping heartbeats."""
        while True:
            event = await self.next(timeout)
            if event.name == name:
                return event
            assert event.name == "comment", f"expected {name}, got {event}"


def _parse(block: str) -> Event:
    lines = block.split("\n")
    if all(line.startswith(":") for line in lines):
        return Event("comment", "\n".join(line[1:].strip() for line in lines))
    name, data = "message", []
    for line in lines:
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    return Event(name, "\n".join(data))


@contextlib.asynccontextmanager
async def in_process_stream(client, path: str) -> AsyncIterator[tuple[object, EventReader]]:
    """Open `path` on Quart's test client; hang up on leaving the block."""
    connection = client.request(path, method="GET", headers=EVENT_STREAM)
    async with connection:
        await connection.send_complete()
        try:
            yield connection, EventReader(connection.receive)
        finally:
            await connection.disconnect()


@contextlib.asynccontextmanager
async def http_stream(
    client: httpx.AsyncClient, path: str
) -> AsyncIterator[tuple[httpx.Response, EventReader]]:
    """Open `path` over HTTP with `client` (its cookies); close on leaving the block."""
    async with client.stream("GET", path, headers=EVENT_STREAM, timeout=None) as response:
        chunks = response.aiter_raw()

        async def receive() -> bytes:
            return await chunks.__anext__()

        yield response, EventReader(receive)
