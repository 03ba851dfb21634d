#!/usr/bin/env bash
# Install everything and run every check: ruff, mypy (strict, product code), then the whole pytest
# suite (extra arguments go to pytest).
set -euo pipefail
source "$(dirname "$0")/_bootstrap.sh"
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=180 GX_ANALYTICS_ENABLED=false
.venv/bin/ruff check .
.venv/bin/mypy cli flows tasks producer infra deployments
exec .venv/bin/pytest "$@"
