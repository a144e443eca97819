"""The common basket request answered in front of FastAPI's routing and validation.

``POST /recommendations`` costs FastAPI about half a millisecond of the event loop's time
(routing, dependency resolution, the body model) beside the basket's scoring, and the loop
also serves every other request. :class:`BasketFastPath` (ASGI middleware, behind the guards)
answers a request whose body is plainly what :class:`~helpers.serving.api.BasketRequest`
accepts and names only known products: ``Content-Type: application/json``, a JSON object with
``product_ids`` (1 to ``max_basket`` JSON integers or strings of 1 to ``max_id_length``
characters) and optionally ``k`` (an integer in 1..``max_k``), nothing else. It submits the basket
to the same scorer as the route and sends the same bytes and headers the route sends. Anything
else (another body, an unknown id, no export loaded) goes to FastAPI unchanged, which answers
it (422, 404, 503) as it always did.
"""

from __future__ import annotations

import asyncio

import orjson

PATH = "/recommendations"


def plain_basket(body: bytes, max_basket: int, max_id_length: int, max_k: int) -> tuple[list, int] | None:
    """``(product_ids, k)`` of a body the route's model accepts as it is; ``None``: let FastAPI decide."""
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(req) is not dict or not req.keys() <= {"product_ids", "k"}:
        return None
    ids, k = req.get("product_ids"), req.get("k", 10)
    if type(ids) is not list or not 1 <= len(ids) <= max_basket or type(k) is not int or not 1 <= k <= max_k:
        return None
    for x in ids:
        if not (type(x) is int or (type(x) is str and 1 <= len(x) <= max_id_length)):
            return None
    return ids, k


def _json_content(headers) -> bool:
    for name, value in headers:
        if name == b"content-type":
            return value.split(b";")[0].strip().lower() == b"application/json"
    return False


class BasketFastPath:
    """ASGI middleware: plain basket requests answered by ``submit((store, product ids, k))``
    (a :class:`concurrent.futures.Future` of the answer's JSON bytes)."""

    def __init__(self, app, holder, submit, max_basket: int, max_id_length: int, max_k: int):
        self.app, self.holder, self.submit = app, holder, submit
        self.limits = (max_basket, max_id_length, max_k)

    async def __call__(self, scope, receive, send):
        if (scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH
                or not _json_content(scope.get("headers") or ())):
            return await self.app(scope, receive, send)
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        store = self.holder.store
        req = plain_basket(body, *self.limits) if store is not None else None
        if req is None or store.unknown_products(req[0]):
            replayed = [False]

            async def replay():
                if not replayed[0]:
                    replayed[0] = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            return await self.app(scope, replay, send)
        answer = await asyncio.wrap_future(self.submit((store, req[0], req[1])))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(answer)).encode()),
                                (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})
