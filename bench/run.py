"""Benchmark: the ledger against the plainest way of doing the same work, same run.

    python -m bench.run --events 1000000 [--store sqlite|postgres] [--json FILE]

Every phase runs in its own process, so its peak RSS is its own. Each figure is
printed next to a baseline measured in this run and their ratio; absolute numbers
are for orientation only (machines are noisy, ratios hold better).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

# The tests' server unless the benchmark is given its own: one setting moves both.
PG_URL = (
    os.environ.get("ENFORCEMENT_LEDGER_BENCH_PG")
    or os.environ.get("ENFORCEMENT_LEDGER_TEST_PG")
    or "postgresql://postgres@127.0.0.1:5432/test"
)
CLI = [sys.executable, "-c", "from cli.main import main; main()"]
PACKAGES = ("cli", "ledger", "projections")


def _child(phase: str, *args: str) -> dict[str, Any]:
    """Run one phase in a fresh interpreter; it prints one JSON line of results."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.phases", phase, *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
    }
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            info["postgresql"] = row[0] if row else None
    except Exception as error:  # the figure is informative only
        info["postgresql"] = f"unavailable ({type(error).__name__})"
    return info


def _store_url(kind: str, workdir: Path, name: str) -> str:
    if kind == "sqlite":
        return str(workdir / f"{name}.db")
    return f"{PG_URL}?schema=bench_{name}_{uuid.uuid4().hex[:8]}"


def _key_path(kind: str, workdir: Path, name: str) -> Path:
    """Per store kind: a workdir shared by a SQLite and a PostgreSQL run holds both."""
    return workdir / f"{name}-{kind}.key"


def _drop(kind: str, url: str) -> None:
    if kind != "postgres":
        return
    import psycopg

    schema = url.rsplit("schema=", 1)[1]
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def build(kind: str, workdir: Path, events: int, name: str) -> dict[str, Any]:
    """Generate N events, import them through the CLI, measure every phase."""
    data = workdir / f"{name}.jsonl"
    _child("generate", "--events", str(events), "--out", str(data))
    url = _store_url(kind, workdir, name)
    try:
        return _build_at(kind, workdir, events, name, data, url)
    except BaseException:
        _drop(kind, url)  # a failed run leaves no schema on the server
        raise


def _build_at(
    kind: str, workdir: Path, events: int, name: str, data: Path, url: str
) -> dict[str, Any]:
    key = _key_path(kind, workdir, name)
    if kind == "sqlite":  # a workdir used before: a fresh store and key, not its old ones
        for stale in (key, *workdir.glob(f"{name}.db*")):
            stale.unlink(missing_ok=True)
    env_args = ["--store", url, "--key-file", str(key)]
    subprocess.run([*CLI, *env_args, "init"], check=True, capture_output=True)
    vkey = subprocess.run(
        [*CLI, *env_args, "keygen"], check=True, capture_output=True, text=True
    ).stdout.strip()
    result: dict[str, Any] = {"events": events, "url": url, "vkey": vkey, "data": str(data)}
    result["import"] = _child("import", url, str(key), str(data))
    result["import_baseline"] = _child("import_baseline", kind, str(data), PG_URL)
    result["import_floor"] = _child("import_floor", url)
    result["checks_floor"] = _child("checks_floor", str(data))
    result["replay"] = _child("replay", url)
    result["replay_baseline"] = _child("read_baseline", url)
    result["verify"] = _child("verify", url, vkey)
    result["verify_baseline"] = _child("verify_baseline", url)
    result["export"] = _child("export", url)
    result["queries"] = _child("queries", url, "1000")
    return result


def single_append(url: str, key: str, runs: int) -> dict[str, Any]:
    """Median wall time of one `record` as a whole process vs bare imports."""
    register = [
        "--store", url, "--key-file", key, "record", "account-registered",
        "--account", "bench:single", "--platform", "bench", "--handle", "single",
        "--occurred-at", "2025-01-01", "--source", "bench",
    ]  # fmt: skip
    # Byte-compile the project as an installed package would be: with
    # PYTHONDONTWRITEBYTECODE set (as here) every run would recompile its sources,
    # while the baseline's libraries are compiled in site-packages.
    root = Path(__file__).resolve().parent.parent
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *(str(root / p) for p in PACKAGES)],
        check=True,
        capture_output=True,
    )
    subprocess.run([*CLI, *register], check=True, capture_output=True)
    times: list[float] = []
    baseline: list[float] = []
    floor: list[float] = []
    for i in range(runs):
        args = [
            "--store",
            url,
            "--key-file",
            key,
            "record",
            "followers-observed",
            "--account",
            "bench:single",
            "--count",
            str(i),
            "--occurred-at",
            f"2025-01-01T00:00:{i % 60:02d}Z",
            "--source",
            "bench",
        ]
        start = time.perf_counter()
        subprocess.run([*CLI, *args], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
        # Interleaved, so both see the same load on a shared machine.
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import click, pydantic, eventsourcing"],
            check=True,
            capture_output=True,
        )
        baseline.append(time.perf_counter() - start)
        # What validating one event costs a fresh process (click, pydantic, the event
        # models, one validator): the part of the ratio no lazy import can remove.
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", _VALIDATION_FLOOR], check=True, capture_output=True)
        floor.append(time.perf_counter() - start)
    return {
        "median_s": statistics.median(times),
        "baseline_median_s": statistics.median(baseline),
        "validation_floor_median_s": statistics.median(floor),
    }


_VALIDATION_FLOOR = (
    "import click; from ledger.events import parse_event; parse_event({'type': "
    "'followers_observed', 'account': 'bench:single', 'count': 1, "
    "'occurred_at': '2025-01-01T00:00:00Z', 'source': 'bench'})"
)


def _rate(phase: dict[str, Any], events: int) -> float:
    return events / phase["seconds"] if phase["seconds"] else float("inf")


def report(results: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """Rows of (figure, value, baseline, ratio, target)."""
    big = results["runs"]["large"]
    n = big["events"]
    rows: list[tuple[str, str, str, str, str]] = []

    def throughput(name: str, phase: str, baseline: str | None, target: str) -> None:
        value = _rate(big[phase], n)
        if baseline is None:
            rows.append((name, f"{value:,.0f} ev/s", "-", "-", target))
            return
        base = _rate(big[baseline], n)
        rows.append(
            (name, f"{value:,.0f} ev/s", f"{base:,.0f} ev/s", f"{value / base:.2f}", target)
        )

    kind = results["store"]
    import_target = (
        ">=50,000 ev/s, ratio >=0.10" if kind == "sqlite" else ">=30,000 ev/s, ratio >=0.15"
    )
    throughput("bulk append (public path)", "import", "import_baseline", import_target)
    if "import_floor" in big:
        throughput(
            "  storage alone (the same rows, prebuilt)", "import_floor", "import_baseline", "-"
        )
    if "checks_floor" in big:
        throughput(
            "  validation + leaf + hash alone (no rules, no rows)",
            "checks_floor",
            "import_baseline",
            "-",
        )
    throughput("replay (projection rebuild)", "replay", "replay_baseline", ">=100,000, ratio >=0.3")
    throughput("verify (whole log)", "verify", "verify_baseline", ">=300,000, ratio >=0.5")
    throughput("export --nl", "export", None, "-")
    small = results["runs"]["small"]
    for query in ("status", "timeline"):
        q_big = big["queries"][query]
        q_small = small["queries"][query]
        rows.append(
            (
                f"{query} p50 / p99 (1,000 accounts)",
                f"{q_big['p50_ms']:.2f} / {q_big['p99_ms']:.2f} ms",
                f"{q_small['p50_ms']:.2f} ms at {small['events']:,}",
                f"{q_big['p50_ms'] / q_small['p50_ms']:.2f}",
                "p99 <=5 ms; p50 ratio <=2",
            )
        )
    single = results["single_append"]
    rows.append(
        (
            "single append as a process (median)",
            f"{single['median_s'] * 1000:.0f} ms",
            f"{single['baseline_median_s'] * 1000:.0f} ms (bare imports)",
            f"{single['median_s'] / single['baseline_median_s']:.2f}",
            "<=250 ms, ratio <=2",
        )
    )
    if "validation_floor_median_s" in single:
        floor = single["validation_floor_median_s"]
        rows.append(
            (
                "  click + event models + one validation",
                f"{floor * 1000:.0f} ms",
                f"{single['baseline_median_s'] * 1000:.0f} ms (bare imports)",
                f"{floor / single['baseline_median_s']:.2f}",
                "-",
            )
        )
    mid = results["runs"]["medium"]
    for phase in ("import", "replay", "verify", "export", "queries"):
        rss_big = big[phase]["peak_rss_mb"]
        rss_mid = mid[phase]["peak_rss_mb"]
        rows.append(
            (
                f"peak RSS: {phase}",
                f"{rss_big:.0f} MB at {n:,}",
                f"{rss_mid:.0f} MB at {mid['events']:,}",
                f"{rss_big / rss_mid:.2f}",
                "<=250 MB, ratio <=1.3",
            )
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--store",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="postgres: the server at $ENFORCEMENT_LEDGER_BENCH_PG, else "
        "$ENFORCEMENT_LEDGER_TEST_PG, else postgresql://postgres@127.0.0.1:5432/test, in "
        "schemas dropped afterwards.",
    )
    parser.add_argument("--json", dest="json_file", help="Also write the results as JSON.")
    parser.add_argument(
        "--smoke", action="store_true", help="A quick run for CI: small sizes, fewer repeats."
    )
    parser.add_argument(
        "--workdir", help="Keep stores and data here (default: a temp dir, removed afterwards)."
    )
    args = parser.parse_args(argv)
    random.seed(1)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="enforcement-ledger-bench-"))
    try:
        _run(args, argv, workdir)
    finally:
        if args.workdir is None:  # a temp dir of stores and data: gone with the run
            shutil.rmtree(workdir, ignore_errors=True)


def _run(args: argparse.Namespace, argv: list[str] | None, workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    n = args.events
    sizes = {"small": min(10_000, n), "medium": max(n // 10, 1_000), "large": n}
    results: dict[str, Any] = {
        "command": " ".join(["python -m bench.run", *(argv or sys.argv[1:])]),
        "store": args.store,
        "machine": _machine(),
        "runs": {},
    }
    started = time.perf_counter()
    try:
        for name, size in sizes.items():
            print(f"[bench] {name}: {size:,} events on {args.store}", file=sys.stderr, flush=True)
            results["runs"][name] = build(args.store, workdir, size, name)
        large = results["runs"]["large"]
        key = str(_key_path(args.store, workdir, "large"))
        results["single_append"] = single_append(large["url"], key, 5 if args.smoke else 20)
    finally:
        for run in results["runs"].values():
            _drop(args.store, run["url"])
    results["wall_seconds"] = time.perf_counter() - started
    rows = report(results)
    results["table"] = [
        dict(zip(("figure", "value", "baseline", "ratio", "target"), r, strict=True)) for r in rows
    ]
    widths = [
        max(len(r[i]) for r in [("figure", "value", "baseline", "ratio", "target"), *rows])
        for i in range(5)
    ]
    header = ("figure", "value", "baseline", "ratio", "target")
    print(f"machine: {json.dumps(results['machine'])}")
    print(f"store: {args.store}, N = {n:,}, wall {results['wall_seconds']:.0f} s")
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if args.json_file:
        Path(args.json_file).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_file).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
