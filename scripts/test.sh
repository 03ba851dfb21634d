#!/usr/bin/env bash
# Install everything and run every check: ruff, mypy (strict, product code), then the whole pytest
# suite (extra arguments go to pytest), including the infrastructure checks and the browser test.
set -euo pipefail
source "$(dirname "$0")/_bootstrap.sh"
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=180 GX_ANALYTICS_ENABLED=false
.venv/bin/ruff check .
.venv/bin/mypy cli flows tasks producer infra deployments
# The dashboard's browser test drives Debian's Chromium (headless).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "candleflow: installing Debian's chromium for the dashboard's browser test (~40 s)" >&2
    apt-get install -y -qq chromium >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; }
  else
    echo "candleflow: the dashboard's browser test needs Chromium: sudo apt-get install chromium" >&2
  fi
fi
# Two workers (pytest-xdist; one file per worker at a time, each with its own moto and Prefect
# servers): the suite waits on servers as much as it computes. CANDLEFLOW_TEST_WORKERS=0 runs serially.
exec .venv/bin/pytest -n "${CANDLEFLOW_TEST_WORKERS:-2}" --dist loadfile "$@"
