"""Concurrent writers on both stores: nothing lost, nothing duplicated, no gaps.

``test_eight_processes_append_concurrently`` starts 8 worker processes that each
append 500 events to the same 10 pre-registered accounts at the same time, as
single appends (``record`` and one-line ``append``) and batches (``append``). Each
worker drives the real CLI in-process (``CliRunner``), so Python start-up is paid
once per worker, not per command. Every event is valid whatever order the
workers' commits interleave in: follower counts, worker-unique posts, and
exemptions whose names belong to one worker.

``test_conflicts_are_retried_with_rules_rerun`` removes the store's write lock
(``Storage.lock_log``) so appenders really race, and checks that uniqueness
conflicts are retried from scratch with the rule checks re-run.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Store

REPO = Path(__file__).resolve().parent.parent
SOURCE = "https://example.org/report"
POLICY = "Test policy"

ACCOUNTS = [f"x:shared{n}" for n in range(10)]
WORKERS = 8
EVENTS_PER_WORKER = 500
# 40 single appends + 5 batches of 92 = 500 events in 45 CLI invocations per worker.
# Invocations, not events, set the pace (each opens its own connections): on a
# 2-core machine 100 singles + 8 batches of 50 (108 invocations) took 110-170 s on
# PostgreSQL; this mix takes about 55 s there and 20-30 s on SQLite.
SINGLES = 40
BATCHES = 5
BATCH_SIZE = (EVENTS_PER_WORKER - SINGLES) // BATCHES
START_TIMEOUT_S = 120.0
RUN_TIMEOUT_S = 900.0

BASE = datetime(2021, 1, 1, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def registrations() -> list[dict[str, Any]]:
    return [
        {
            "type": "account_registered",
            "event_id": f"reg-{account.split(':')[1]}",
            "account": account,
            "platform": "x",
            "handle": "@" + account.split(":")[1],
            "occurred_at": "2020-01-01T00:00:00Z",
            "source": SOURCE,
        }
        for account in ACCOUNTS
    ]


def worker_events(k: int) -> list[dict[str, Any]]:
    """Worker ``k``'s 500 events, valid in any interleaving with other workers'.

    Every fifth event is an exemption event: exemption ``w<k>-ex<p>`` is applied,
    then revoked by the same worker (so in its own commit order), except the last
    one, which stays in force. The rest are follower counts and posts unique to
    the worker. Times are distinct across workers (a day apart) and increase
    within a worker.
    """
    events: list[dict[str, Any]] = []
    exemption_events = 0
    for i in range(EVENTS_PER_WORKER):
        event: dict[str, Any] = {
            "event_id": f"w{k}-{i}",
            "account": ACCOUNTS[(k + i) % len(ACCOUNTS)],
            "occurred_at": _iso(BASE + timedelta(days=k, minutes=i)),
            "source": SOURCE,
        }
        kind = i % 5
        if kind == 4:
            e = exemption_events
            exemption_events += 1
            pair = e // 2
            if e == 99:  # the last apply stays in force
                event.update(type="followers_observed", count=10_000 + i)
            else:
                event.update(
                    type="exemption_applied" if e % 2 == 0 else "exemption_revoked",
                    account=ACCOUNTS[(k + pair) % len(ACCOUNTS)],
                    exemption=f"w{k}-ex{pair}",
                    policy=POLICY,
                )
        elif kind in (0, 1):
            event.update(type="followers_observed", count=1000 * k + i)
        else:
            event.update(type="post_published", post=f"w{k}-p{i}", excerpt=f"post {i}")
        events.append(event)
    return events


def worker_plan(k: int) -> list[list[dict[str, Any]]]:
    """The worker's invocations in order: runs of single appends between batches."""
    events = worker_events(k)
    plan: list[list[dict[str, Any]]] = []
    position = 0
    singles_per_round = SINGLES // BATCHES
    for batch in range(BATCHES):
        singles = singles_per_round + (1 if batch < SINGLES % BATCHES else 0)
        for _ in range(singles):
            plan.append([events[position]])
            position += 1
        plan.append(events[position : position + BATCH_SIZE])
        position += BATCH_SIZE
    assert position == EVENTS_PER_WORKER
    return plan


def _record_args(event: dict[str, Any]) -> list[str]:
    args = ["record", event["type"].replace("_", "-"), "--json"]
    for key, value in event.items():
        if key != "type":
            args += ["--" + key.replace("_", "-"), str(value)]
    return args


def run_worker(spec_text: str) -> int:
    """Entry point of one worker process; prints a JSON summary on stdout."""
    spec = json.loads(spec_text)
    k = int(spec["worker"])
    os.environ["ENFORCEMENT_LEDGER_KEY_FILE"] = spec["key_file"]
    os.environ["ENFORCEMENT_LEDGER_ACTOR"] = f"worker-{k}"
    from click.testing import CliRunner

    from cli.main import cli

    # Warm the lazily imported modules before the start signal.
    for module in ("ledger.application", "ledger.integrity", "projections.queries"):
        importlib.import_module(module)

    runner = CliRunner()
    plan = worker_plan(k)
    ready = Path(spec["sync_dir"]) / f"ready-{k}"
    go = Path(spec["sync_dir"]) / "go"
    ready.touch()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not go.exists():
        if time.monotonic() > deadline:
            print(json.dumps({"worker": k, "failures": ["start signal never came"]}))
            return 1
        time.sleep(0.01)

    started = time.monotonic()
    failures: list[str] = []
    appended = 0
    for n, events in enumerate(plan):
        single = len(events) == 1
        if single and n % 2 == 0:
            args, text = _record_args(events[0]), None
        else:
            args = ["append", "--json", "-"]
            text = "".join(json.dumps(e) + "\n" for e in events)
        result = runner.invoke(cli, ["--store", spec["url"], *args], input=text)
        if result.exit_code != 0 or result.exception is not None:
            failures.append(
                f"invocation {n} ({args[:2]}): exit {result.exit_code}, "
                f"{result.exception!r}: {result.output[-2000:]}"
            )
            continue
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        if summary["appended"] != len(events) or summary["skipped"]:
            failures.append(f"invocation {n}: {summary}, expected {len(events)} appended")
        appended += summary["appended"]
    print(
        json.dumps(
            {
                "worker": k,
                "invocations": len(plan),
                "appended": appended,
                "seconds": round(time.monotonic() - started, 2),
                "failures": failures,
            }
        )
    )
    return 1 if failures else 0


def _start_workers(store: Store, key_file: Path, sync_dir: Path) -> list[dict[str, Any]]:
    """Run the workers at once; their JSON summaries, in worker order."""
    sync_dir.mkdir()
    processes = []
    logs = []
    for k in range(WORKERS):
        spec = json.dumps(
            {"worker": k, "url": store.url, "key_file": str(key_file), "sync_dir": str(sync_dir)}
        )
        out = (sync_dir / f"out-{k}").open("w")
        err = (sync_dir / f"err-{k}").open("w")
        logs += [out, err]
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import sys; from tests.test_concurrency import run_worker; "
                    "sys.exit(run_worker(sys.argv[1]))",
                    spec,
                ],
                cwd=REPO,
                stdout=out,
                stderr=err,
            )
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(list(sync_dir.glob("ready-*"))) < WORKERS:
            dead = [p.args for p in processes if p.poll() is not None]
            assert not dead, [(sync_dir / f"err-{k}").read_text() for k in range(WORKERS)]
            assert time.monotonic() < deadline, "workers did not get ready"
            time.sleep(0.05)
        (sync_dir / "go").touch()
        for process in processes:
            process.wait(timeout=RUN_TIMEOUT_S)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for log in logs:
            log.close()
    summaries = []
    for k, process in enumerate(processes):
        stdout = (sync_dir / f"out-{k}").read_text()
        stderr = (sync_dir / f"err-{k}").read_text()
        assert process.returncode == 0, (k, process.returncode, stdout, stderr[-4000:])
        assert "Traceback" not in stderr, stderr[-4000:]
        summaries.append(json.loads(stdout.strip().splitlines()[-1]))
    return summaries


def test_eight_processes_append_concurrently(bare_store: Store, tmp_path: Path) -> None:
    store = bare_store
    key_file = tmp_path / "ledger.key"
    key_env = {"ENFORCEMENT_LEDGER_KEY_FILE": str(key_file)}
    store.ok("init")
    vkey = store.ok("keygen", env=key_env).stdout.strip()
    pre = registrations()
    store.ok("append", "-", input="".join(json.dumps(e) + "\n" for e in pre), env=key_env)

    started = time.monotonic()
    summaries = _start_workers(store, key_file, tmp_path / "sync")
    elapsed = time.monotonic() - started
    print(f"\n{store.kind}: {WORKERS} workers x {EVENTS_PER_WORKER} events in {elapsed:.1f}s")
    for summary in summaries:
        print(f"  worker {summary['worker']}: {summary['seconds']}s")
        assert summary["failures"] == [], summary["failures"]
        assert summary["appended"] == EVENTS_PER_WORKER
        assert summary["invocations"] == SINGLES + BATCHES

    # Every event exactly once, in a gapless sequence.
    lines = store.ok("export", "--nl").stdout.splitlines()
    total = len(pre) + WORKERS * EVENTS_PER_WORKER
    assert len(lines) == total
    records = [json.loads(line) for line in lines]
    assert [r["sequence"] for r in records] == list(range(total))
    ids = Counter(r["event_id"] for r in records)
    assert [i for i, n in ids.items() if n > 1] == []
    expected_ids = {e["event_id"] for e in pre}
    for k in range(WORKERS):
        expected_ids |= {e["event_id"] for e in worker_events(k)}
    assert set(ids) == expected_ids
    assert all(
        r["actor"] == f"worker-{r['event_id'].split('-')[0][1:]}"
        for r in records
        if r["event_id"].startswith("w")
    )
    # Record time never runs backwards along the sequence.
    recorded = [r["recorded_at"] for r in records]
    assert recorded == sorted(recorded)

    # Signed checkpoints: one per append batch, all verified.
    invocations = 1 + WORKERS * (SINGLES + BATCHES)
    verified = store.ok("verify", "--vkey", vkey).stdout
    assert verified.startswith(f"OK size {total} "), verified
    assert f"({invocations} checkpoint(s)" in verified, verified

    # Replay equals the incremental read side.
    before = store.ok("timeline", "--nl").stdout
    assert store.ok("replay").stdout.strip() == f"Rebuilt projections from {total} event(s)"
    after = store.ok("timeline", "--nl").stdout
    assert len(after.splitlines()) == total
    assert after == before

    # Every account's history is complete and its state consistent.
    every = [e for k in range(WORKERS) for e in worker_events(k)]
    for account in ACCOUNTS:
        mine = [e for e in every if e["account"] == account]
        history = store.timeline("--account", account)
        assert len(history) == 1 + len(mine), account
        status = store.status(account)
        in_force = {
            f"w{k}-ex49" for k in range(WORKERS) if ACCOUNTS[(k + 49) % len(ACCOUNTS)] == account
        }
        assert {e["exemption"] for e in status["exemptions"]} == in_force, account
        latest = max(
            (e for e in mine if e["type"] == "followers_observed"),
            key=lambda e: e["occurred_at"],
        )
        assert status["followers"] == latest["count"], account
        assert status["status"] == "active"


def test_conflicts_are_retried_with_rules_rerun(
    bare_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the write lock appenders race; conflicts are retried, rules re-run.

    On PostgreSQL removing ``lock_log`` lets transactions interleave, and a batch
    that loses a race on a stream version or a sequence number hits a unique
    index, is rolled back and re-run. On SQLite ``BEGIN IMMEDIATE`` still takes
    the file's single write lock, so appends cannot conflict there: the test
    then only shows that nothing is lost or duplicated.
    """
    from ledger.application import Ledger, LedgerError
    from ledger.events import parse_event
    from ledger.location import StoreLocation
    from ledger.persistence import Storage
    from ledger.postgres import PostgresStorage

    store = bare_store
    store.ok("init")
    pre = registrations()[:3]
    store.ok("append", "-", input="".join(json.dumps(e) + "\n" for e in pre))

    monkeypatch.setattr(Storage, "lock_log", lambda self, db: None)
    monkeypatch.setattr(PostgresStorage, "lock_log", lambda self, db: None)

    threads, rounds, size = 4, 25, 4
    barrier = threading.Barrier(threads)
    calls = [0] * threads
    retried = [0] * threads
    won: list[list[int]] = [[] for _ in range(threads)]
    lost: list[list[str]] = [[] for _ in range(threads)]
    errors: list[str] = []

    def regular(t: int, r: int) -> list[dict[str, Any]]:
        account = ACCOUNTS[r % 3]  # every thread writes the same account each round
        return [
            {
                "type": "followers_observed",
                "event_id": f"t{t}-r{r}-{j}",
                "account": account,
                "count": j,
                "occurred_at": _iso(BASE + timedelta(days=t, minutes=10 * r + j)),
                "source": SOURCE,
            }
            for j in range(size)
        ]

    def contested(t: int, r: int) -> dict[str, Any]:
        """All threads apply the same exemption at once: only one may succeed."""
        return {
            "type": "exemption_applied",
            "event_id": f"t{t}-c{r}",
            "account": ACCOUNTS[0],
            "exemption": f"contested-{r}",
            "policy": POLICY,
            "occurred_at": _iso(BASE + timedelta(days=100, minutes=r)),
            "source": SOURCE,
        }

    def work(t: int) -> None:
        app = Ledger(StoreLocation.parse(store.url))
        try:

            def factory(events: list[dict[str, Any]]) -> Any:
                def fresh() -> list[tuple[int, Any]]:
                    calls[t] += 1
                    return [(n, parse_event(e, n)) for n, e in enumerate(events, 1)]

                return fresh

            for r in range(rounds):
                barrier.wait(timeout=60)
                result = app.append(factory(regular(t, r)), actor=f"thread-{t}")
                assert result.appended == size, result
                barrier.wait(timeout=60)
                try:
                    app.append(factory([contested(t, r)]), actor=f"thread-{t}")
                    won[t].append(r)
                except LedgerError as error:
                    lost[t].append(str(error))
        except Exception as error:
            errors.append(f"thread {t}: {type(error).__name__}: {error}")
            barrier.abort()
        finally:
            retried[t] = app.conflicts_retried
            app.close()

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert errors == []

    # Exactly one winner per contested round; every loser was refused by the rule.
    winners = Counter(r for rounds_won in won for r in rounds_won)
    assert winners == Counter(range(rounds)), winners
    refusals = [message for messages in lost for message in messages]
    assert len(refusals) == rounds * (threads - 1)
    assert all("already in force" in message for message in refusals), refusals[:3]

    lines = store.ok("export", "--nl").stdout.splitlines()
    total = len(pre) + threads * rounds * size + rounds
    assert len(lines) == total
    records = [json.loads(line) for line in lines]
    assert [r["sequence"] for r in records] == list(range(total))
    ids = Counter(r["event_id"] for r in records)
    assert max(ids.values()) == 1
    expected = {e["event_id"] for e in pre}
    expected |= {
        f"t{t}-r{r}-{j}" for t in range(threads) for r in range(rounds) for j in range(size)
    }
    expected |= {f"t{t}-c{r}" for t in range(threads) for r in won[t]}
    assert set(ids) == expected
    assert store.ok("verify").stdout.startswith(f"OK size {total} ")
    status = store.status(ACCOUNTS[0])
    assert {e["exemption"] for e in status["exemptions"]} == {
        f"contested-{r}" for r in range(rounds)
    }

    conflicts = sum(retried)
    attempts = sum(calls)
    print(f"\n{store.kind}: {conflicts} conflict(s) retried, {attempts} batch attempts")
    # Each retry re-ran the batch from scratch (the events factory was called again).
    assert attempts == threads * rounds * 2 + conflicts
    if store.kind == "postgres":
        assert conflicts > 0, "no conflict was provoked; the retry path went untested"


def test_export_known_at_while_a_batch_commits_is_no_tamper_alarm(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`export --known-at` reads the index's size, checks the index against it and
    bisects its record times: a batch committed between those reads (any writer at
    work) was named "a row … outside the log: the index was changed outside the
    ledger", and the export refused. They are one state of the store."""
    from ledger.persistence import Storage

    store.append(*registrations()[:2])
    known_at = _iso(datetime.now(UTC))
    tree_size = Storage.tree_size
    appended: list[dict[str, Any]] = []

    def then_a_writer_commits(self: Storage, db: Any) -> int:
        size = tree_size(self, db)
        if not appended:
            appended.append(store.append(*registrations()[2:3]))
        return size

    monkeypatch.setattr(Storage, "tree_size", then_a_writer_commits)
    exported = store.ok("export", "--nl", "--known-at", known_at).stdout.splitlines()
    assert appended  # the writer did commit in between
    assert len(exported) == 2
    assert store.count() == 3


def test_prove_consistency_while_a_signed_batch_commits_proves_to_one_state(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`prove consistency OLD` read the log's size, then the latest checkpoint on a
    connection of its own: a signed batch committed between the two gave a checkpoint
    past that size, refused as "need OLD_SIZE <= NEW_SIZE <= 2 (the log size); given
    1 and 3". Both are read from one state of the store."""
    from ledger.persistence import Storage

    key = store.tmp_path / "signing.key"
    env = {"ENFORCEMENT_LEDGER_KEY_FILE": str(key)}
    store.ok("keygen", env=env)
    lines = "".join(json.dumps(e) + "\n" for e in registrations()[:2])
    store.ok("append", "-", input=lines, env=env)
    tree_size = Storage.tree_size
    appended: list[str] = []

    def then_a_writer_commits(self: Storage, db: Any) -> int:
        size = tree_size(self, db)
        if not appended:
            line = json.dumps(registrations()[2]) + "\n"
            appended.append(store.ok("append", "-", input=line, env=env).stdout)
        return size

    monkeypatch.setattr(Storage, "tree_size", then_a_writer_commits)
    proof = store.ok("prove", "consistency", "1", env=env).stdout
    assert appended  # the writer did commit in between
    monkeypatch.setattr(Storage, "tree_size", tree_size)
    assert proof == store.ok("prove", "consistency", "1", "--to", "2", env=env).stdout
