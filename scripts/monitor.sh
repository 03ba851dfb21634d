#!/usr/bin/env bash
# A live terminal dashboard of the pipeline: queues, producers, ingest, symbols, flow runs, alerts
# and problems (`candleflow monitor`). Options pass through: --interval SECONDS, --once, --frames N.
# Ctrl-C (or q + Enter) quits. With no AWS_ENDPOINT_URL set and the embedded stack of
# ./scripts/start.sh running, it watches that stack.
set -euo pipefail
source "$(dirname "$0")/_bootstrap.sh"
state="${CANDLEFLOW_STATE_DIR:-.candleflow}"
if [ -z "${AWS_ENDPOINT_URL:-}" ] && [ -f "$state/env" ] && [ -f "$state/pids/aws.pid" ]; then
  source "$state/env"
fi
exec .venv/bin/candleflow monitor "$@"
