"""The recommendation API: FastAPI over the export folder, answering from memory.

    make serve          # uvicorn helpers.serving.api:app on 127.0.0.1:8000
    RECBOOK_EXPORT_DIR=/path/to/exports .venv/bin/python -m uvicorn helpers.serving.api:app --port 8000

The export root (``data/exports`` unless ``RECBOOK_EXPORT_DIR`` says otherwise) is served
through :func:`helpers.export.versioned.resolve`: its ``current`` version, or the root itself
for a plain export folder. The export is read into memory (no memory map) and reloaded on
``SIGHUP``, on ``POST /admin/reload`` and when the periodic check
(``RECBOOK_API_RELOAD_SECONDS``) sees another version (:mod:`helpers.serving.reload`).
Settings, including the optional API key and rate limit: :mod:`helpers.serving.settings`.

Baskets are scored in micro-batches (:mod:`helpers.serving.batcher`): one worker thread scores
the baskets that arrived while it scored the previous ones together
(:meth:`~helpers.serving.store.ExportStore.basket_json_many`, at most ``RECBOOK_API_BASKET_BATCH``;
the same answers as one by one), and an idle server scores a basket at once. A plain basket
request is answered in front of FastAPI's routing (:mod:`helpers.serving.fastpath`, the same
bytes); any other goes through the route. While the app runs,
BLAS is limited to one thread (``threadpoolctl``): the server's products are small
(a matrix-vector product per basket, 128 x 128 solves) and a BLAS pool's threads spin between
them, taking the CPU the event loop and the other requests need (measured on Complete Journey at
160 baskets/s: 11.1 ms of server CPU per basket with the pool, 7.5 ms without); and one thread
makes the scores those of the reference computation (a threaded product splits its sums
differently, which changes last bits).

Identifiers are the export's own, integers or text (:mod:`helpers.serving.ids`): paths take
them as text (``/customers/C00042/recommendations``, ``/customers/42/recommendations``), a
basket as JSON strings or integers. An id the export does not know is a 404 naming it.

Endpoints
---------
``GET /health``
    The model version served, export time and what was loaded; ``"degraded"`` with HTTP 503
    when no export is loaded or the folder served is gone.
``GET /customers/{customer_id}/recommendations?k=10&exclude_purchased=false``
    Exactly the batch export's list of a known customer (``model/top_all.parquet``, or
    ``top_new.parquet`` with ``exclude_purchased=true``); an unknown customer is a 404.
``GET /recommendations/cold-start?k=10&exclude_purchased=false&segment=``
    The cold-start list (global popularity, reason ``trending``), or a segment's
    (``segment=35-44``: the value of the export's segment type; ``/health`` lists them).
``GET /products/{product_id}/similar?k=10``
    The export's most similar products (TF-IDF cosine).
``POST /recommendations`` with ``{"product_ids": [...], "k": 10}``
    An anonymous basket (1 to 1,000 ids) scored in real time (:mod:`helpers.serving.basket`).
``POST /admin/reload``
    Reload the export now (needs the API key when one is set); answers like ``/health``.

``k`` must be in 1..100 and a malformed body is a 422; a body over the cap is a 413. Every
list item has the fields of ``recommendations.schema.json`` (``customer_id`` null for a
basket or a cold-start list); similar products those of ``similar_products.schema.json``
plus the similar product's description, category and brand.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, StringConstraints
from threadpoolctl import threadpool_limits

from helpers.export.production import MAX_K
from helpers.serving.batcher import MicroBatcher
from helpers.serving.cache import ResponseCache
from helpers.serving.fastpath import BasketFastPath
from helpers.serving.guards import Guards
from helpers.serving.reload import StoreHolder
from helpers.serving.settings import ENV_VAR, MAX_BASKET, MAX_ID_LENGTH, Settings, export_dir_from_env
from helpers.serving.store import ExportStore, dumps

__all__ = ["ENV_VAR", "MAX_BASKET", "BasketRequest", "ExportStore", "app", "create_app", "dumps",
           "export_dir_from_env"]

TextId = Annotated[StrictStr, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH)]


class BasketRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product_ids: list[StrictInt | TextId] = Field(
        ..., min_length=1, max_length=MAX_BASKET,
        description="Products in the basket: the export's product ids, as strings (or integers).")
    k: int = Field(10, ge=1, le=MAX_K, description="Number of recommendations (1..100).")


def _json(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/json")


def _unknown(kind: str, ids: list) -> HTTPException:
    return HTTPException(404, detail={"message": f"unknown {kind} id{'s' if len(ids) > 1 else ''}: "
                                                 + ", ".join(map(str, ids)),
                                      f"unknown_{kind}_ids": ids})


def score_baskets(items: list, pool=None) -> list[bytes]:
    """Answers of ``(store, product ids, k)`` items, each store's baskets scored together (a
    reload may change the store between two requests of one batch; ``pool``: a thread for half
    of the ALS products)."""
    out: list = [None] * len(items)
    groups: dict = {}
    for i, (s, _ids, _k) in enumerate(items):
        groups.setdefault(id(s), []).append(i)
    for idx in groups.values():
        bodies = items[idx[0]][0].basket_json_many([items[i][1] for i in idx], [items[i][2] for i in idx], pool)
        for i, body in zip(idx, bodies):
            out[i] = body
    return out


def create_app(export_dir=None, settings: Settings | None = None) -> FastAPI:
    """The FastAPI app serving ``export_dir`` (else ``$RECBOOK_EXPORT_DIR`` or ``data/exports``)."""
    settings = settings or Settings.from_env(export_dir)
    holder = StoreHolder(settings.export_root, settings.cache_bytes)
    # a second thread for half of each batch's ALS products (GIL released): the batch's slowest part on both cores
    als_pool = ThreadPoolExecutor(1, thread_name_prefix="basket-als")
    baskets = MicroBatcher(lambda items: score_baskets(items, als_pool), max_batch=settings.basket_batch,
                           name="basket-scorer")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(holder.load)
        loop = asyncio.get_running_loop()
        busy = asyncio.Lock()

        async def reload(check: bool) -> None:
            async with busy:
                await run_in_threadpool(holder.check if check else holder.load)

        tasks: set = set()

        def on_hup() -> None:
            task = loop.create_task(reload(False))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError, AttributeError):
            loop.add_signal_handler(signal.SIGHUP, on_hup)  # the main thread's loop only

        async def watch() -> None:
            while True:
                await asyncio.sleep(settings.reload_seconds)
                with contextlib.suppress(Exception):
                    await reload(True)

        watcher = loop.create_task(watch()) if settings.reload_seconds > 0 else None
        app.state.reload = reload
        # process-wide while the app runs (uvicorn runs the lifespan on the main thread: OpenBLAS
        # ignores a thread count set by another thread once the main thread has set one)
        blas = threadpool_limits(limits=1, user_api="blas")
        try:
            yield
        finally:
            baskets.close()
            blas.restore_original_limits()
            if watcher is not None:
                watcher.cancel()
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError, AttributeError):
                loop.remove_signal_handler(signal.SIGHUP)

    app = FastAPI(title="Retail recommender API", version="2.0",
                  description="Recommendations from the batch export, plus real-time basket scoring.",
                  lifespan=lifespan)
    app.state.holder = holder
    app.state.settings = settings
    app.state.baskets = baskets

    def store() -> ExportStore:
        s = holder.store
        if s is None:
            raise HTTPException(503, detail={"message": "no export loaded", "reason": holder.error})
        return s

    @app.get("/health")
    async def health():
        status, body = holder.health()
        return _json(dumps(body), status)

    @app.get("/customers/{customer_id:path}/recommendations")
    async def customer_recommendations(customer_id: str, k: int = Query(10, ge=1, le=MAX_K),
                                       exclude_purchased: bool = False):
        body = store().customer_json(customer_id, k, exclude_purchased)
        if body is None:
            raise _unknown("customer", [customer_id])
        return _json(body)

    @app.get("/recommendations/cold-start")
    async def cold_start(k: int = Query(10, ge=1, le=MAX_K), exclude_purchased: bool = False,
                         segment: str | None = Query(None, max_length=MAX_ID_LENGTH)):
        body = store().cold_start_json(k, exclude_purchased, segment or None)
        if body is None:
            raise HTTPException(404, detail={"message": f"unknown segment {segment!r}", "segment": segment})
        return _json(body)

    @app.get("/products/{product_id:path}/similar")
    async def similar_products(product_id: str, k: int = Query(10, ge=1, le=MAX_K)):
        body = store().similar_json(product_id, k)
        if body is None:
            raise _unknown("product", [product_id])
        return _json(body)

    @app.post("/recommendations")
    async def basket_recommendations(body: BasketRequest):  # scored by the batcher's thread, off the loop
        s = store()
        unknown = s.unknown_products(body.product_ids)
        if unknown:
            raise _unknown("product", unknown)
        return _json(await asyncio.wrap_future(baskets.submit((s, body.product_ids, body.k))))

    @app.post("/admin/reload")
    async def admin_reload(request: Request):
        await request.app.state.reload(False)
        status, out = holder.health()
        return _json(dumps(out), status)

    app.add_middleware(ResponseCache, holder=holder, max_bytes=settings.cache_bytes)
    app.add_middleware(BasketFastPath, holder=holder, submit=baskets.submit, max_basket=MAX_BASKET,
                       max_id_length=MAX_ID_LENGTH, max_k=MAX_K)
    app.add_middleware(Guards, max_body_bytes=settings.max_body_bytes, api_key=settings.api_key,
                       rate_per_second=settings.rate_per_second, burst=settings.burst)
    return app


app = create_app()
