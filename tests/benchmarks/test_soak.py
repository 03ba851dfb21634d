"""The soak run (``benchmarks.soak``, ``./scripts/soak.sh``), very short and slow: its checks hold.

Twelve seconds say nothing about memory staying flat (that takes minutes: the real soak), so the RSS
checks are only required to have been made; the queue, error and exactness checks must pass.

The real soak starts its own moto and Prefect servers; here it runs on the session's moto server
(in this process, so the ``soak`` RSS is this process's) and Prefect test server, with the same
ingest worker process, scheduled ingest runs, sampler and checks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from prefect.settings import PREFECT_API_URL

from benchmarks.bench import SYMBOLS
from benchmarks.pipeline import Stage, phase_settings
from benchmarks.soak import SoakOptions, soak, verdict_table, write_results
from benchmarks.stack import aws_env, clean_env
from tasks.settings import Settings

RATE = 200.0
SECONDS = 12.0
SAMPLE_S = 1.5
CHECKS = [
    "queue bounded",
    "RSS flat: worker",
    "RSS flat: soak",
    "no errors",
    "candles exact",
]


def test_a_short_soak_passes_every_check_and_records_its_samples(
    moto_endpoint: str, prefect_harness: None, tmp_path: Path
) -> None:
    env = {
        **clean_env(),
        **aws_env(moto_endpoint),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "GX_ANALYTICS_ENABLED": "false",
    }
    stage = Stage(env, tmp_path, frozenset())
    settings = phase_settings(Settings(), f"soak{os.getpid()}", SYMBOLS)
    options = SoakOptions(
        rate=RATE,
        minutes=SECONDS / 60,
        sample_s=SAMPLE_S,
        ingest_max_seconds=3.0,  # flow runs start and end during the soak, as scheduled ones do
        ingest_every_s=4.0,
        results_dir=tmp_path,
    )
    printed: list[str] = []

    result = soak(stage, settings, options, services={}, out=printed.append)
    path = tmp_path / "soak.json"
    write_results(result, path)

    table = verdict_table(result)
    document = json.loads(path.read_text())
    assert [c["check"] for c in document["checks"]] == CHECKS
    must = {c["check"]: c["passed"] for c in document["checks"] if not c["check"].startswith("RSS")}
    assert all(must.values()), table
    assert document["passed"] == all(c["passed"] for c in document["checks"])
    samples = document["samples"]
    assert len(samples) >= 3  # the first, one a sample interval on at least, the last
    assert [s["t"] for s in samples] == sorted(s["t"] for s in samples)
    assert all(s["rss_kb"]["worker"] and s["rss_kb"]["soak"] for s in samples)
    assert samples[-1]["trades_sent"] == document["trades_sent"] == int(RATE * SECONDS)
    assert document["candles"]["trade_count"] == int(RATE * SECONDS)
    assert document["ingest_runs"] and document["drain"]
    # a progress line per sample, after the header, and the verdict
    assert printed[0].split()[:3] == ["elapsed", "trades", "sent"]
    assert sum(line.rstrip().endswith(" 0") for line in printed[1:]) >= len(samples)
    assert table.rstrip().endswith("SOAK PASSED" if document["passed"] else "SOAK FAILED")
