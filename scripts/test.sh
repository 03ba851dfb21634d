#!/usr/bin/env bash
# Install everything and run every check: ruff, then the whole pytest suite (extra args go to pytest).
set -euo pipefail
source "$(dirname "$0")/_bootstrap.sh"
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=180 GX_ANALYTICS_ENABLED=false
.venv/bin/ruff check .
exec .venv/bin/pytest "$@"
