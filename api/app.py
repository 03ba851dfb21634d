"""The FastAPI app: the seed's ``/markets`` and ``/data/{marketid}``, ``/candles``, ``/alerts``,
``/health``, and the dashboard at ``/``. Build it with ``create_app(settings)``."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from api.markets import Market, MarketList
from api.ratelimit import RateLimiter
from api.reader import Reader
from api.schemas import AlertOut, CandlesOut, SeedRecord
from api.views import alert_view, candle_view, drawable, exact_json, seed_record
from infra.spec import resource_spec
from tasks.aws.clients import AwsClients
from tasks.core.keys import parse_iso
from tasks.core.models import Interval
from tasks.settings import Settings

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
MAX_LIMIT = 1000
SEED_RECORDS = 100
MARKET_TEXT = r"^[A-Za-z0-9_-]{1,40}$"


def _time(name: str, text: str | None) -> int | None:
    """An ISO-8601 time or epoch milliseconds; 422 naming the parameter otherwise."""
    if text is None:
        return None
    try:
        return int(text) if text.isdigit() else parse_iso(text)
    except ValueError:
        raise HTTPException(
            422, f"{name}={text!r} is not a time: use ISO-8601 (2024-08-08T23:54:00Z) or epoch ms"
        ) from None


class RateLimit(BaseHTTPMiddleware):
    """429 with Retry-After once a client (its address as uvicorn reports it) is over budget.

    Behind a load balancer, ``uvicorn_config`` with ``api_trust_forwarded_for`` makes uvicorn
    take the address from X-Forwarded-For; otherwise that header is ignored.
    """

    def __init__(self, app: Any, limiter: RateLimiter) -> None:
        super().__init__(app)
        self.limiter = limiter

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        client = request.client.host if request.client else "unknown"
        wait = self.limiter.check(client, time.monotonic())
        if wait is not None:
            return JSONResponse(
                {
                    "detail": f"rate limit: {self.limiter.limit} requests per "
                    f"{self.limiter.window_s:.0f} s per client; retry in {wait:.0f} s"
                },
                status_code=429,
                headers={"Retry-After": str(max(1, round(wait)))},
            )
        return await call_next(request)


def uvicorn_config(app: FastAPI, settings: Settings, port: int | None = None) -> uvicorn.Config:
    """How the app is served: X-Forwarded-For is honoured only when the settings trust it."""
    trusted = settings.api_trust_forwarded_for
    return uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port if port is None else port,
        proxy_headers=trusted,
        forwarded_allow_ips="*" if trusted else None,
        log_level="warning",
        access_log=False,
    )


def create_app(settings: Settings, clients: AwsClients | None = None) -> FastAPI:
    markets = MarketList.from_settings(settings)
    reader = Reader(clients or AwsClients(), resource_spec(settings), markets)
    app = FastAPI(
        title="candleflow",
        version="0.1.0",
        description="Exact 1m/1h/1d candles built from Binance trades, order-book spreads and "
        "anomaly alerts. Read-only. Times are UTC; prices and volumes are exact decimals.",
    )
    app.add_middleware(
        RateLimit, limiter=RateLimiter(settings.api_rate_limit, settings.api_rate_window_s)
    )

    def market_of(name: str) -> Market:
        market = markets.find(name)
        if market is None:
            raise HTTPException(
                404, f"unknown market {name!r}; known markets: {', '.join(markets.names())}"
            )
        return market

    @app.get("/markets", response_model=list[str], summary="Markets with data (seed shape)")
    def list_markets() -> list[str]:
        """``<market>_<interval>`` of every configured market that has stored candles."""
        return reader.market_ids()

    @app.get(
        "/data/{marketid}",
        response_model=list[SeedRecord],
        summary="The 100 most recent records of a market (seed shape)",
    )
    def seed_data(
        marketid: Annotated[str, PathParam(pattern=MARKET_TEXT, examples=["BTCUSDT_1m"])],
    ) -> Response:
        """Newest first, as the seed answered: ``{"marketid", "timestamp", "data"}``."""
        parsed = markets.parse_id(marketid)
        if parsed is None:
            raise HTTPException(
                404,
                f"unknown market id {marketid!r}: use <market>_<1m|1h|1d> with a market of "
                f"{', '.join(markets.names())} (GET /markets lists those with data)",
            )
        market, interval = parsed
        items = [i for i in reader.recent(market, interval, SEED_RECORDS * 2) if drawable(i)]
        records = [seed_record(i, market.name, interval) for i in items[:SEED_RECORDS]]
        return Response(exact_json(records), media_type="application/json")

    @app.get("/candles/{market}", response_model=CandlesOut, summary="Candles of a market")
    def candles(
        market: Annotated[str, PathParam(pattern=MARKET_TEXT, examples=["BTCUSDT"])],
        interval: Annotated[Interval, Query()] = Interval.M1,
        start: Annotated[str | None, Query(description="ISO-8601 or epoch ms, inclusive")] = None,
        end: Annotated[str | None, Query(description="ISO-8601 or epoch ms, inclusive")] = None,
        limit: Annotated[
            int, Query(ge=1, description=f"Candles at most; above {MAX_LIMIT} is capped")
        ] = 500,
    ) -> dict[str, Any]:
        """From ``start`` on in time order, or the newest ``limit`` candles without a start."""
        found = market_of(market)
        start_ms, end_ms = _time("start", start), _time("end", end)
        if start_ms is not None and end_ms is not None and end_ms < start_ms:
            raise HTTPException(422, f"end ({end}) is before start ({start})")
        applied = min(limit, MAX_LIMIT)
        items = [i for i in reader.items(found, interval, start_ms, end_ms, applied) if drawable(i)]
        gaps = reader.open_gaps(found)
        rows = [candle_view(i, parse_iso(i["timestamp"]["S"]), interval, gaps) for i in items]
        return {
            "market": found.name,
            "interval": interval.value,
            "kind": found.kind,
            "limit": applied,
            "candles": rows,
        }

    @app.get("/alerts", response_model=list[AlertOut], summary="Recent anomaly alerts")
    def alerts(
        market: Annotated[str | None, Query(pattern=MARKET_TEXT)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> list[dict[str, Any]]:
        """Newest first; alerts, reminders and "cleared" messages as the anomaly flow sent them."""
        found = market_of(market) if market is not None else None
        return [alert_view(a) for a in reader.alerts(found, limit)]

    @app.get("/livez", summary="Liveness (the load balancer's health check)")
    def livez() -> dict[str, bool]:
        """The process answers; it reads no store (``/health`` says how the pipeline is)."""
        return {"ok": True}

    @app.get("/health", summary="Pipeline health")
    def health() -> JSONResponse:
        """Queue and DLQ depths, the oldest message's age, ingest lag per symbol, the newest
        candle, open gaps, producers' rates. 503 when the stores cannot be read."""
        try:
            status = reader.status()
        except Exception as exc:
            log.exception("health check failed")
            return JSONResponse({"status": "down", "problems": [str(exc)]}, status_code=503)
        return JSONResponse(status.as_dict())

    app.mount("/", StaticFiles(directory=STATIC, html=True, check_dir=False), name="dashboard")
    return app
