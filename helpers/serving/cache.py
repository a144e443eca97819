"""A bounded cache of whole GET answers, in front of the routing and parameter validation.

The list endpoints answer the same bytes for the same path and query while one export is
served, so a repeated request skips FastAPI's routing and validation (most of a request's
cost) and is answered from memory. Only ``200`` answers of the paths in ``prefixes`` are kept,
least recently used evicted first within ``max_bytes``; the cache empties when another export
is loaded (it is keyed by the store object). It sits behind :class:`~helpers.serving.guards.Guards`:
the API key and rate limit apply to cached answers too.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

PREFIXES = ("/customers/", "/products/", "/recommendations/cold-start")


class ResponseCache:
    """ASGI middleware: cached ``GET`` answers of the list endpoints."""

    def __init__(self, app, holder, max_bytes: int, prefixes: tuple = PREFIXES):
        self.app, self.holder, self.max_bytes, self.prefixes = app, holder, int(max_bytes), prefixes
        self._store = None
        self._entries: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def _get(self, store, key):
        with self._lock:
            if self._store is not store:
                self._store, self._bytes = store, 0
                self._entries.clear()
                return None
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
            return hit

    def _put(self, store, key, headers: list, body: bytes) -> None:
        with self._lock:
            if self._store is not store or key in self._entries or len(body) > self.max_bytes:
                return
            self._entries[key] = (headers, body)
            self._bytes += len(body)
            while self._bytes > self.max_bytes and self._entries:
                self._bytes -= len(self._entries.popitem(last=False)[1][1])

    async def __call__(self, scope, receive, send):
        if (self.max_bytes <= 0 or scope["type"] != "http" or scope["method"] != "GET"
                or not scope["path"].startswith(self.prefixes)):
            return await self.app(scope, receive, send)
        store = self.holder.store
        key = (scope["path"], scope.get("query_string", b""))
        hit = self._get(store, key)
        if hit is not None:
            await send({"type": "http.response.start", "status": 200, "headers": hit[0]})
            await send({"type": "http.response.body", "body": hit[1]})
            return
        start: dict = {}

        async def capture(message):
            if message["type"] == "http.response.start":
                start.update(message)
            elif (message["type"] == "http.response.body" and start.get("status") == 200
                  and not message.get("more_body", False) and store is not None):
                self._put(store, key, list(start.get("headers", [])), bytes(message.get("body", b"")))
            await send(message)

        await self.app(scope, receive, capture)
