"""A small HTTP service around one `auction.live.LiveMarket` (Starlette, ASGI).

Endpoints (JSON in and out; times in seconds; every input may carry an ``id`` so a client can
retry it safely, and an ``at``):

* ``POST /orders``: submit ``{"order": {"side": "offer"|"request", ...}, "expires_at"?,
  "start"?}``;
* ``DELETE /orders/{order_id}``: cancel;
* ``GET /book``: the open orders; ``GET /leases``: the active leases;
* ``POST /advance`` ``{"at": t}``: move the clock (expiries, lease ends, epoch clears);
* ``POST /clear``: clear now (periodic markets);
* ``GET /events?since=seq``: output events after ``seq`` (poll it to watch clears);
* ``GET /result``: the last periodic clear, as `ClearingResult.to_dict`.

An input the market rejects answers 422 with the ``rejected`` event. The market's own lock
makes each call atomic; calls run in Starlette's thread pool so the event loop never blocks
on a clear. Run it with::

    pip install "auction[service]"
    uvicorn --factory app:create_app --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from auction.live import Event, LiveMarket


def _answer(events: list[Event]) -> JSONResponse:
    records = [e.to_record() for e in events]
    rejected = bool(records) and records[0]["kind"] == "rejected"
    return JSONResponse({"events": records}, status_code=422 if rejected else 200)


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        data = None
    return data if isinstance(data, dict) else {"_invalid_body": data}


def create_app(market: LiveMarket | None = None) -> Starlette:
    """The ASGI app over `market` (a new periodic first-price market by default)."""
    live = market if market is not None else LiveMarket(mode="periodic", epoch=3600)

    async def submit(request: Request) -> JSONResponse:
        return _answer(await run_in_threadpool(live.handle, {"kind": "submit",
                                                             **await _body(request)}))

    async def cancel(request: Request) -> JSONResponse:
        rec = {"kind": "cancel", "order_id": request.path_params["order_id"],
               **{k: v for k, v in request.query_params.items() if k == "id"}}
        return _answer(await run_in_threadpool(live.handle, rec))

    async def advance(request: Request) -> JSONResponse:
        return _answer(await run_in_threadpool(live.handle, {"kind": "advance",
                                                             **await _body(request)}))

    async def clear(request: Request) -> JSONResponse:
        return _answer(await run_in_threadpool(live.handle, {"kind": "clear",
                                                             **await _body(request)}))

    async def book(request: Request) -> JSONResponse:
        orders = await run_in_threadpool(live.orders)
        return JSONResponse({"now": live.now, "orders": [
            {"side": type(o).__name__.lower(), **o.to_record()} for o in orders]})

    async def leases(request: Request) -> JSONResponse:
        found = await run_in_threadpool(live.leases)
        return JSONResponse({"now": live.now, "leases": [le.to_record() for le in found]})

    async def events(request: Request) -> JSONResponse:
        try:
            since = int(request.query_params.get("since", "0"))
        except ValueError:
            return JSONResponse({"error": "since must be an int"}, status_code=400)
        found = await run_in_threadpool(live.events_since, since)
        return JSONResponse({"seq": live.seq, "events": [e.to_record() for e in found]})

    async def result(request: Request) -> JSONResponse:
        last = live.last_result
        return JSONResponse(None if last is None else last.to_dict())

    return Starlette(routes=[
        Route("/orders", submit, methods=["POST"]),
        Route("/orders/{order_id}", cancel, methods=["DELETE"]),
        Route("/advance", advance, methods=["POST"]),
        Route("/clear", clear, methods=["POST"]),
        Route("/book", book),
        Route("/leases", leases),
        Route("/events", events),
        Route("/result", result),
    ])
