"""ASGI guards in front of the app: rate limit, API key, body cap (each off unless configured).

* **Rate limit** (``rate_per_second`` > 0): a token bucket per client address (``burst``
  tokens, refilled at ``rate_per_second``); an empty bucket answers 429 with ``Retry-After``.
  At most :data:`MAX_CLIENTS` buckets are kept (the least recently seen dropped first).
* **API key** (``api_key`` set): every request but ``GET /health`` needs the header
  ``X-API-Key`` with that value (compared in constant time), else 401.
* **Body cap** (always on): a ``Content-Length`` above ``max_body_bytes`` answers 413 before a
  byte of the body is read; a body without a length (chunked) is counted while it is read and
  stopped at the cap with 413.
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from collections import OrderedDict

import orjson

MAX_CLIENTS = 10_000
OPEN_PATHS = frozenset({"/health"})


class TokenBuckets:
    """One token bucket per key: ``take(key)`` is 0 when a token was taken, else the seconds to wait."""

    def __init__(self, rate: float, burst: float, max_keys: int = MAX_CLIENTS, clock=time.monotonic):
        self.rate, self.burst, self.max_keys, self.clock = float(rate), float(burst), max_keys, clock
        self._buckets: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key) -> float:
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens - 1.0 if wait == 0.0 else tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return wait


async def _reply(send, status: int, detail: dict, headers: tuple = ()) -> None:
    body = orjson.dumps({"detail": detail})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *headers]})
    await send({"type": "http.response.body", "body": body})


class Guards:
    """The ASGI middleware of the module docstring."""

    def __init__(self, app, max_body_bytes: int, api_key: str | None = None, rate_per_second: float = 0.0,
                 burst: float = 1.0):
        self.app = app
        self.max_body_bytes = int(max_body_bytes)
        self.api_key = api_key.encode() if api_key else None
        self.buckets = TokenBuckets(rate_per_second, burst) if rate_per_second > 0 else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or ())
        open_path = scope.get("path") in OPEN_PATHS
        if self.buckets is not None and not open_path:
            client = (scope.get("client") or ("unknown", 0))[0]
            wait = self.buckets.take(client)
            if wait > 0:
                return await _reply(send, 429, {"message": f"rate limit: retry in {wait:.2f} s"},
                                    ((b"retry-after", str(max(1, math.ceil(wait))).encode()),))
        if self.api_key is not None and not open_path:
            if not hmac.compare_digest(headers.get(b"x-api-key", b""), self.api_key):
                return await _reply(send, 401, {"message": "missing or wrong X-API-Key header"})
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return await _reply(send, 400, {"message": "bad Content-Length header"})
            if int(length) > self.max_body_bytes:
                return await _reply(send, 413, {"message": f"request body over {self.max_body_bytes} bytes",
                                                "max_body_bytes": self.max_body_bytes})
            return await self.app(scope, receive, send)
        if b"transfer-encoding" not in headers:  # neither a length nor chunks: no body
            return await self.app(scope, receive, send)
        return await self._counted(scope, receive, send)

    async def _counted(self, scope, receive, send):
        """A body without a length: read up to the cap (413 beyond it), then handed to the app whole."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                return await _reply(send, 413, {"message": f"request body over {self.max_body_bytes} bytes",
                                                "max_body_bytes": self.max_body_bytes})
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        replayed = [False]

        async def replay():
            if not replayed[0]:
                replayed[0] = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
