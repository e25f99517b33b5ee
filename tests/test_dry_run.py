"""`append --dry-run` and `record --dry-run`: every check an append makes, and nothing
written: the same answer (summary or error) the append would give, and a store left
exactly as it was (log, checkpoints, read models)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.generate import generate
from tests.conftest import Store
from tests.ledger_helpers import SEED_EVENTS, account, ev, export, jsonl

SEED = Path(__file__).parents[1] / "ledger" / "data" / "seed.jsonl"


def _everything(store: Store, *verify: str) -> list[str]:
    """What a dry run must leave untouched: the log, its checkpoints, the read models."""
    return [
        store.ok("export", "--nl").stdout,
        store.ok("verify", *verify).stdout,
        store.ok("timeline", "--nl", "--known-at", "2100-01-01").stdout,
        store.ok("accounts", "--nl", "--as-of", "2100-01-01", "--known-at", "2100-01-01").stdout,
    ]


def test_a_dry_run_answers_as_the_append_would_and_writes_nothing(
    store: Store, tmp_path: Path
) -> None:
    key = tmp_path / "ledger.key"
    vkey = ["--vkey", store.ok("--key-file", str(key), "keygen").stdout.strip()]
    store.ok("--key-file", str(key), "append", str(SEED))
    before = _everything(store, *vkey)
    assert "(1 checkpoint(s)" in before[1]
    batch = "\n".join(generate(300, seed=11)) + "\n"
    dry = store.ok("--key-file", str(key), "append", "--dry-run", "--json", "-", input=batch)
    summary = json.loads(dry.stdout)
    assert summary.pop("dry_run") is True
    assert _everything(store, *vkey) == before  # no checkpoint signed either
    real = store.ok("--key-file", str(key), "append", "--json", "-", input=batch)
    assert json.loads(real.stdout) == summary  # the same events, at the same sequences
    assert summary["appended"] == 300
    assert summary["first_sequence"] == SEED_EVENTS


def test_a_dry_run_refuses_what_the_append_refuses(store: Store) -> None:
    store.ok("append", str(SEED))
    before = _everything(store)
    bad = jsonl(
        account("twitter:new", "2024-01-01"),
        ev("account_reinstated", "2024-02-01", account="twitter:new"),  # never suspended
    )
    dry = store.fail("append", "--dry-run", "-", input=bad)
    real = store.fail("append", "-", input=bad)
    assert dry.stderr == real.stderr
    assert "line 2: account_reinstated" in dry.stderr
    assert _everything(store) == before


def test_record_dry_run(store: Store) -> None:
    store.ok("append", str(SEED))
    before = _everything(store)
    args = ["--account", "twitter:khamenei_ir", "--post", "p2", "--occurred-at", "2024-03-01"]
    result = store.ok("record", "post-published", *args, "--source", "s", "--dry-run")
    assert result.stdout == (  # no made id: the append would make another
        f"Would append 1 event(s), sequence {SEED_EVENTS}..{SEED_EVENTS}\n"
        "Dry run: every check passed; nothing was written\n"
    )
    assert _everything(store) == before
    done = store.ok("record", "post-published", *args, "--source", "s").stdout
    assert re.fullmatch(
        f"Appended 1 event\\(s\\), sequence {SEED_EVENTS}..{SEED_EVENTS} "
        "\\(event_id ev-[0-9a-f]{32}\\)\n",  # the id made: what a retraction will name
        done,
    ), done
    assert done.split()[-1].rstrip(")") == export(store)[-1]["event_id"]  # the stored one
    made = done.split()[-1].rstrip(")")
    store.ok("record", "event-retracted", "--target", made, "--reason", "r",
             "--occurred-at", "2024-03-02", "--source", "s")  # fmt: skip
    before = _everything(store)
    refused = store.fail(
        "record", "account-reinstated", "--account", "twitter:khamenei_ir",
        "--occurred-at", "2024-03-01", "--source", "s", "--dry-run",
    )  # fmt: skip
    assert "account_reinstated rejected" in refused.stderr
    assert _everything(store) == before


@pytest.mark.parametrize("sort", [False, True], ids=["in-order", "sorted"])
def test_a_dry_run_of_re_sent_events_says_what_it_would_skip(store: Store, sort: bool) -> None:
    store.ok("append", str(SEED))
    flags = ["--sort"] if sort else []
    result = store.ok("append", "--dry-run", *flags, str(SEED))
    assert result.stdout.startswith(f"Would skip {SEED_EVENTS} already recorded event(s): ")
    assert result.stdout.endswith("Dry run: every check passed; nothing was written\n")
