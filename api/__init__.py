"""candleflow's read-only HTTP API and candlestick dashboard (FastAPI, served by uvicorn)."""
