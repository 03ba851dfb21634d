#!/usr/bin/env bash
# Soak the whole pipeline (not part of CI): synthetic trades at a steady rate (default 1,000/s for
# 30 minutes) through the producer, SQS, the scheduled ingest runs, S3 and DynamoDB, on private moto
# and Prefect servers; checks that the queue stays bounded, memory stays flat, nothing errs and the
# candles are exact, and exits non-zero when a check fails. Options: --help (e.g. --minutes 5).
set -euo pipefail
source "$(dirname "$0")/_bootstrap.sh"
export GX_ANALYTICS_ENABLED=false
exec "$UV" run --frozen python -m benchmarks.soak "$@"
