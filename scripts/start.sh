#!/usr/bin/env bash
# Start the whole pipeline on the embedded default: AWS emulator, Prefect server and UI, the scheduled
# ingest deployment, and the producer (live Binance, or a replay of the shipped captures offline).
set -euo pipefail
source "$(dirname "$0")/_bootstrap.sh"
exec .venv/bin/candleflow up "$@"
