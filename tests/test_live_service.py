"""The example HTTP service (docs/examples/service), served by uvicorn on loopback and driven
by a real HTTP client: submit, cancel, read the book and the leases, watch a clear."""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from auction.live import LiveMarket  # noqa: E402

APP = Path(__file__).resolve().parents[1] / "docs" / "examples" / "service" / "app.py"


def _load_app_module() -> Any:
    spec = importlib.util.spec_from_file_location("live_service_app", APP)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def service() -> Iterator[tuple[str, LiveMarket]]:
    market = LiveMarket(mode="periodic", mechanism="first-price", epoch=3600)
    app = _load_app_module().create_app(market)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "the server stopped while starting"
            assert time.monotonic() < deadline, "the server did not start in 30 s"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", market
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_service_end_to_end(service: tuple[str, LiveMarket]) -> None:
    url, market = service
    offer = {"side": "offer", "id": "o1", "provider": "p", "gpu_model": "H100", "gpus": 4,
             "price": 2_000_000, "region": "us-east", "vram_gb": 80}
    req = {"side": "request", "id": "r1", "tenant": "t", "gpus": 2, "max_price": 2_500_000}
    with httpx.Client(base_url=url, timeout=10.0) as http:
        r = http.post("/orders", json={"order": offer, "id": "sub-o1", "at": 10})
        assert r.status_code == 200
        assert [e["kind"] for e in r.json()["events"]] == ["accepted"]
        assert http.post("/orders", json={"order": offer, "id": "sub-o1"}).json() == {
            "events": []}  # a retry is a no-op
        http.post("/orders", json={"order": req, "id": "sub-r1", "at": 20})
        http.post("/orders", json={"order": {**req, "id": "r2"}, "at": 30})
        bad = http.post("/orders", json={"order": {**req, "id": "r3", "gpus": 0}})
        assert bad.status_code == 422
        (rej,) = bad.json()["events"]
        assert (rej["kind"], rej["data"]["field"]) == ("rejected", "gpus")
        assert http.delete("/orders/r2", params={"id": "cancel-r2"}).status_code == 200
        assert http.delete("/orders/nope").status_code == 422
        book = http.get("/book").json()
        assert sorted(o["id"] for o in book["orders"]) == ["o1", "r1"]
        seen = http.get("/events").json()["seq"]
        # watch a clear: the epoch clear at 3600 fills r1 from o1
        adv = http.post("/advance", json={"at": 3600}).json()["events"]
        assert [e["kind"] for e in adv] == ["cleared", "fill", "lease-started"]
        watched = http.get("/events", params={"since": seen}).json()["events"]
        assert [e["kind"] for e in watched] == ["cleared", "fill", "lease-started"]
        assert watched[1]["data"]["unit_price"] == 2_000_000
        leases = http.get("/leases").json()["leases"]
        assert [(le["request_id"], le["gpus"], le["end"]) for le in leases] == [
            ("r1", 2, 7200)]
        assert http.get("/result").json()["allocations"][0]["request_id"] == "r1"
        book = http.get("/book").json()["orders"]
        assert [(o["id"], o["gpus"]) for o in book] == [("o1", 2)]
        assert http.post("/clear", json={"at": 1}).status_code == 422  # time goes back
    assert market.now == 3600
