"""``candleflow api``: the read-only HTTP API and candlestick dashboard (uvicorn)."""

from __future__ import annotations

import argparse

from tasks.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "api",
        help="serve the HTTP API and the candlestick dashboard",
        description="Serve GET /markets, /data/{marketid}, /candles/{market}, /alerts, /health "
        "and the dashboard at / (OpenAPI docs at /docs). Binds CANDLEFLOW_API_HOST:"
        "CANDLEFLOW_API_PORT; reads the stores through the standard AWS chain.",
    )
    p.add_argument("--port", type=int, default=None, help="port (default: CANDLEFLOW_API_PORT)")
    p.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.app import create_app, uvicorn_config

    config = uvicorn_config(create_app(settings), settings, args.port)
    print(
        f"candleflow API and dashboard on http://{config.host}:{config.port}/ "
        f"(docs: /docs; rate limit {settings.api_rate_limit} requests per "
        f"{settings.api_rate_window_s} s per client)",
        flush=True,
    )
    uvicorn.Server(config).run()
    return 0
