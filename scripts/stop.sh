#!/usr/bin/env bash
# Stop everything ./scripts/start.sh started, and nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/candleflow ]; then
  echo "nothing to stop: candleflow was never started here"
  exit 0
fi
exec .venv/bin/candleflow down "$@"
