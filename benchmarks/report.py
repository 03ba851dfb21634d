"""The benchmark's targets and its printed table."""

from __future__ import annotations

from typing import Any

TARGET_END_TO_END = 50_000.0  # trades/s
TARGET_RATIO = 100.0  # packed / one-per-message
TARGET_P99_MS = 5_000.0
TARGET_RSS_MB = 500.0
TARGET_REBUILD_S = 10.0  # one day of one symbol's 1m/1h/1d candles from the lake

Row = tuple[str, str, str, str]


def verdicts(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target the results can judge: its value, the target and whether it was met."""
    out: dict[str, dict[str, Any]] = {}
    packed, base, lat = results.get("throughput"), results.get("baseline"), results.get("latency")
    if packed:
        rate = packed["end_to_end_rate"]
        met = rate >= TARGET_END_TO_END and packed["exact"]
        out["end_to_end"] = {"value": rate, "target": TARGET_END_TO_END, "met": met}
    if packed and base:
        ratio = packed["end_to_end_rate"] / base["end_to_end_rate"]
        out["ratio"] = {"value": ratio, "target": TARGET_RATIO, "met": ratio >= TARGET_RATIO}
    if lat:
        p99 = lat["p99_ms"]
        out["p99"] = {"value": p99, "target": TARGET_P99_MS, "met": p99 <= TARGET_P99_MS}
    rebuilt = results.get("rebuild") or {"runs": [], "exact": False}
    for run in rebuilt["runs"]:
        met = run["seconds"] <= TARGET_REBUILD_S and rebuilt["exact"]
        out[f"rebuild_{run['key']}"] = {
            "value": run["seconds"],
            "target": TARGET_REBUILD_S,
            "met": met,
        }
    peaks = [r["peak_rss_kb"] for r in (packed, base, lat) if r]
    if peaks:
        mb = max(peaks) / 1024
        out["peak_rss"] = {"value": mb, "target": TARGET_RSS_MB, "met": mb <= TARGET_RSS_MB}
    return out


def _row(label: str, value: str = "", target: str = "", verdict: Any = None) -> Row:
    mark = "" if verdict is None else "ok" if verdict["met"] else "MISSED"
    return (label, value, target, mark)


def _s(ms: float) -> str:
    return "never" if ms == float("inf") else f"{ms / 1000:.2f} s"


def _rate(trades_per_s: float, seconds: float | None = None) -> str:
    text = f"{trades_per_s:,.0f} trades/s"
    return text if seconds is None else f"{text} in {seconds:.1f} s"


def _throughput_rows(p: dict[str, Any], v: dict[str, Any]) -> list[Row]:
    mib = p["message_bytes"] / 2**20
    objects = len(p["object_sizes"])
    return [
        _row(f"throughput: {p['trades']:,} trades in {p['messages']:,} messages ({mib:.0f} MiB)"),
        _row("  producer parses frames (outside end to end)", _rate(p["parse_rate"], p["parse_s"])),
        _row(
            "  producer packs, gzips, sends",
            f"{_rate(p['producer_rate'], p['producer_s'])} (CPU {p['producer_cpu_s']:.1f} s)",
        ),
        _row(
            f"  ingest ({p['batches']} batches, {objects} lake objects)",
            f"{_rate(p['ingest_rate'], p['ingest_s'])} (CPU {p['ingest_cpu_s']:.1f} s)",
        ),
        _row(
            "  end to end (send + ingest)",
            _rate(p["end_to_end_rate"]),
            f">= {TARGET_END_TO_END:,.0f}",
            v.get("end_to_end"),
        ),
        _row("  end to end with frame parsing", _rate(p["with_parse_rate"])),
        _row("  candles exact (every trade counted once)", "yes" if p["exact"] else "NO"),
    ]


def _latency_rows(lat: dict[str, Any], v: dict[str, Any]) -> list[Row]:
    per_batch = lat["batch_seconds"] / lat["batches"] if lat["batches"] else 0.0
    poll = lat["poll_s"] * 1000
    return [
        _row(
            f"latency: {lat['rate']:g} trades/s for {lat['seconds']:g} s, polled every {poll:.0f} ms"
        ),
        _row(
            "  trade time -> counted in DynamoDB, p50 / p99",
            f"{_s(lat['p50_ms'])} / {_s(lat['p99_ms'])}",
            f"p99 <= {TARGET_P99_MS / 1000:g} s",
            v.get("p99"),
        ),
        _row(
            "  max; trades seen / emitted",
            f"{_s(lat['max_ms'])}; {lat['visible']:,} / {lat['trades']:,}",
        ),
        _row("  ingest batches; mean processing time", f"{lat['batches']}; {per_batch:.2f} s"),
    ]


def _rebuild_rows(r: dict[str, Any], v: dict[str, Any]) -> list[Row]:
    lake = r["lake"]
    rows = [
        _row(
            f"rebuild: {r['symbol']} 1m/1h/1d of {r['day']} from the lake",
            f"{r['trades']:,} trades in {lake['parquet_objects']} Parquet objects "
            f"({lake['parquet_bytes'] / 2**20:.0f} MiB)",
        )
    ]
    for run in r["runs"]:
        b = run["breakdown"]
        rows += [
            _row(
                f"  {run['label']}",
                f"{run['seconds']:.2f} s, {run['trades_per_s']:,.0f} trades/s",
                f"<= {TARGET_REBUILD_S:g} s",
                v.get(f"rebuild_{run['key']}"),
            ),
            _row(
                "    read lake / rebuild 1m / rollup 1h+1d / export / other",
                " / ".join(f"{b[k]:.2f}" for k in b) + " s",
            ),
            _row(
                "    CPU: backfill / moto / Prefect server / other processes",
                f"{run['cpu_s']:.1f} / {run['moto_cpu_s']:.1f} / {run['prefect_cpu_s']:.1f} / "
                f"{run['foreign_cpu_s']:.1f} s ({run['foreign_share']:.0%} of the machine)",
            ),
            _row(
                "    peak RSS of the backfill process (RSS before the run)",
                f"{run['peak_rss_kb'] / 1024:,.0f} MB ({run['rss_before_kb'] / 1024:,.0f} MB)"
                + ("" if run["peak_reset"] else " - peak since the worker started"),
            ),
            _row(
                "    1m candles written / minutes rebuilt",
                f"{run['minutes_written']:,} / {run['minutes']:,}",
            ),
        ]
    f = r.get("floor")
    if f:
        rows.append(
            _row(
                f"  DynamoDB alone: {f['puts']:,} conditional puts "
                f"({f['transactions']} transactions of the 1m ones) on 8 threads, "
                f"{f['reads']} reads of the day",
                f"{f['seconds']:.2f} s (moto CPU {f['moto_cpu_s']:.1f} s)",
            )
        )
    counts = ", ".join(f"{n} {i}" for i, n in r["candles"].items())
    rows.append(
        _row(
            "  candles exact (1m, 1h, 1d = aggregate of the trades)",
            f"yes ({counts})" if r["exact"] else "NO",
        )
    )
    return rows


def render(results: dict[str, Any]) -> str:
    v = results.get("verdicts", {})
    m = results["machine"]
    packed, base, lat = results.get("throughput"), results.get("baseline"), results.get("latency")
    rows: list[Row] = []
    if packed:
        rows += _throughput_rows(packed, v)
    if base:
        rows += [
            _row(f"baseline: {base['trades']:,} trades, one per message, {base['rounds']} rounds"),
            _row(
                "  send / ingest",
                f"{base['producer_rate']:,.0f} / {base['ingest_rate']:,.1f} trades/s",
            ),
            _row("  end to end", f"{base['end_to_end_rate']:,.1f} trades/s"),
        ]
    if "ratio" in v:
        ratio = v["ratio"]
        rows.append(
            _row(
                "packed / baseline, end to end",
                f"{ratio['value']:,.0f}x",
                f">= {TARGET_RATIO:.0f}x",
                ratio,
            )
        )
    if lat:
        rows += _latency_rows(lat, v)
    if "peak_rss" in v:
        rss = v["peak_rss"]
        startup = [r["startup_rss_kb"] / 1024 for r in (packed, base) if r]
        label = "peak RSS of the ingest process"
        if startup:
            label += f" (after warm-up: {max(startup):,.0f} MB)"
        rows.append(_row(label, f"{rss['value']:,.0f} MB", f"<= {TARGET_RSS_MB:.0f} MB", rss))
    if results.get("rebuild"):
        rows += _rebuild_rows(results["rebuild"], v)
    width = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        f"candleflow benchmark: {m['cpus']} CPUs, Python {m['python']}, "
        f"commit {m['commit'] or '?'}, {m['time']}",
        "",
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, width, strict=True)).rstrip() for r in rows]
    return "\n".join(lines + _bounds(results))


def _bounds(results: dict[str, Any]) -> list[str]:
    """What the measured times are made of, where the benchmark can tell."""
    out: list[str] = []
    f, packed = results.get("floors"), results.get("throughput")
    if f and packed:
        ideal = packed["trades"] / (f["sqs_send_s"] + f["ingest_s"])
        out += [
            "",
            f"moto alone on the throughput load ({f['messages']} messages; {f['s3_objects']} "
            f"objects, {f['s3_bytes'] / 2**20:.0f} MiB), one call at a time:",
            f"  SQS send {f['sqs_send_s']:.1f} s (the producer took {packed['producer_s']:.1f} s); "
            f"SQS receive + delete {f['sqs_receive_delete_s']:.1f} s; S3 put {f['s3_put_s']:.1f} s",
            f"  moto's share of the ingest: {f['ingest_s']:.1f} s of {packed['ingest_s']:.1f} s; "
            f"end to end if candleflow's own work took no time: {ideal:,.0f} trades/s",
        ]
    rss = results.get("verdicts", {}).get("peak_rss")
    if rss and not rss["met"] and packed:
        warm = packed["startup_rss_kb"] / 1024
        out += [
            "",
            f"peak RSS {rss['value']:,.0f} MB = {warm:,.0f} MB once the worker is warm (imports: "
            "great-expectations with pandas, scipy, sqlalchemy; prefect; polars) + "
            f"{rss['value'] - warm:,.0f} MB for batches of up to "
            f"CANDLEFLOW_BATCH_MAX_TRADES={results['settings']['batch_max_trades']:,} trades",
        ]
    shares = [
        (name, r["foreign_share"])
        for name, r in (
            ("throughput", packed),
            ("baseline", results.get("baseline")),
            ("latency", results.get("latency")),
        )
        if r
    ]
    rebuilt = results.get("rebuild")
    shares += (
        [(f"rebuild {run['key']}", run["foreign_share"]) for run in rebuilt["runs"]]
        if rebuilt
        else []
    )
    if any(share > 0.05 for _, share in shares):
        out += [
            "",
            "other processes used the CPUs while these were timed (wall times are inflated): "
            + ", ".join(f"{name} {share:.0%} of the machine" for name, share in shares),
        ]
    if results.get("profile"):
        out += ["", f"ingest profile (cProfile): {results['profile']}"]
    if results.get("rebuild_profiles"):
        out += ["", "rebuild profiles (cProfile): " + ", ".join(results["rebuild_profiles"])]
    return out
