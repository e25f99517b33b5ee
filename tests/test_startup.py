"""What a command loads: start-up cost is mostly imports, so each command imports
only what it uses. Checked in a fresh interpreter by the modules it ends with (no
timings: machines are noisy, module lists are not).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from ledger.application import Ledger
from ledger.location import StoreLocation
from projections.projector import Projector
from tests.conftest import Store

ROOT = Path(__file__).resolve().parents[1]

# Runs the CLI, then (at exit, whatever the exit status) writes the loaded modules.
_PROBE = """
import atexit, json, sys

def _dump():
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        json.dump(sorted(sys.modules), out)

atexit.register(_dump)
from cli.main import main
main(sys.argv[2:])
"""

# The console script's function (from pyproject.toml), with Ctrl-C arriving while the
# command's modules load: click's import is interrupted.
_INTERRUPTED_PROBE = """
import importlib, sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "click":
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, CtrlC())
module, _, function = sys.argv[1].partition(":")
getattr(importlib.import_module(module), function)()
"""

NOT_FOR_HELP = ("pydantic", "eventsourcing", "ledger.application", "ledger.events", "psycopg")
SIGNING = ("cryptography", "ledger.integrity", "ledger.notes")
READ_SIDE_QUERIES = ("projections.queries",)


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """The CLI in a fresh interpreter; returns its result and the modules it loaded."""
    dump = tmp_path / "modules.json"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ENFORCEMENT_LEDGER_") and k != "PYTHONPATH"
    }
    env["ENFORCEMENT_LEDGER_ACTOR"] = "tester"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(dump), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    modules = set(json.loads(dump.read_text(encoding="utf-8")))
    return done, modules


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """The given top-level packages or modules (and their submodules) that were loaded."""
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def _register(store: Store) -> None:
    store.ok(
        "record", "account-registered", "--account", "twitter:probe", "--platform", "twitter",
        "--handle", "probe", "--occurred-at", "2024-01-01", "--source", "s",
    )  # fmt: skip


FOLLOWERS = (
    "record", "followers-observed", "--account", "twitter:probe", "--count", "7",
    "--occurred-at", "2024-01-02", "--source", "s",
)  # fmt: skip


def test_help_loads_no_ledger_machinery(tmp_path: Path) -> None:
    done, modules = _run(tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    assert "record" in done.stdout
    assert _loaded(modules, NOT_FOR_HELP + SIGNING) == []


def test_schema_loads_no_store(tmp_path: Path) -> None:
    done, modules = _run(tmp_path, "schema")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["title"] == "Enforcement ledger event"
    assert _loaded(modules, ("eventsourcing", "ledger.application", "psycopg", *SIGNING)) == []


def test_record_without_key_loads_no_signing_or_queries(store: Store, tmp_path: Path) -> None:
    _register(store)
    done, modules = _run(tmp_path, "--store", store.url, *FOLLOWERS)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Appended 1 event(s), sequence 1..1 (event_id ev-")
    assert "ledger.events" in modules
    assert "ledger.application" in modules
    # Appends run on our storage and rules: the eventsourcing application (the
    # repository, the notification log) is for reconstituting and following.
    assert _loaded(modules, (*SIGNING, *READ_SIDE_QUERIES, "eventsourcing")) == []
    # The append projected itself inside its transaction: the read models are current
    # without the separate catch-up a single append no longer runs.
    ledger = Ledger(StoreLocation.parse(store.url))
    try:
        with ledger.storage.connect() as db:
            assert Projector(ledger, db).position()[1] == 1
    finally:
        ledger.close()
    assert [e["count"] for e in store.timeline("--type", "followers_observed")] == [7]


def test_record_with_key_signs_without_queries(store: Store, tmp_path: Path) -> None:
    key = str(tmp_path / "ledger.key")
    store.ok("--key-file", key, "keygen")
    _register(store)
    done, modules = _run(tmp_path, "--store", store.url, "--key-file", key, *FOLLOWERS)
    assert done.returncode == 0, done.stderr
    assert "cryptography" in modules
    assert _loaded(modules, (*READ_SIDE_QUERIES, "eventsourcing")) == []
    # Every append with a key commits a checkpoint: the new one covers both events.
    proof = store.ok("--key-file", key, "prove", "inclusion", "1").stdout
    assert "\n2\n" in proof


def test_invalid_record_is_refused_before_opening_the_store(tmp_path: Path) -> None:
    # The store does not exist: input errors are found before it is looked for.
    missing = str(tmp_path / "missing.db")
    done, modules = _run(
        tmp_path, "--store", missing, "record", "followers-observed", "--account",
        "twitter:probe", "--count", "7", "--occurred-at", "2024-01-02T10:00:00", "--source", "s",
    )  # fmt: skip
    assert done.returncode == 1
    assert (
        done.stderr
        == "Error: occurred_at: Input should have timezone info (given '2024-01-02T10:00:00')\n"
    )
    assert _loaded(modules, ("eventsourcing", "ledger.application", "psycopg", *SIGNING)) == []
    assert not Path(missing).exists()


def test_status_loads_no_writing_machinery(store: Store, tmp_path: Path) -> None:
    _register(store)
    done, modules = _run(tmp_path, "--store", store.url, "status", "twitter:probe")
    assert done.returncode == 0, done.stderr
    assert "active" in done.stdout
    assert _loaded(modules, ("eventsourcing", "pydantic", *SIGNING)) == []


def _console_script_under(probe: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The console script's function (as pyproject.toml names it), run with ``args``
    under ``probe``, a script given that entry point and the arguments."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    entry = scripts["scripts"]["enforcement-ledger"]
    return subprocess.run(
        [sys.executable, "-c", probe, entry, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_ctrl_c_while_loading_ends_quietly() -> None:
    """Ctrl-C in the first moments of a command (before the CLI's own handling is in
    place) printed a traceback and ended the process by the signal."""
    done = _console_script_under(_INTERRUPTED_PROBE, "--help")
    assert (done.returncode, done.stdout, done.stderr) == (
        130,
        "",
        "Interrupted: nothing was done\n",
    )


# The console script's function, with Ctrl-C arriving once the command is done, while
# Python shuts down (an atexit handler stands in for the moment).
_INTERRUPTED_AT_EXIT_PROBE = """
import atexit, importlib, os, signal, sys, time

def late():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.1)

atexit.register(late)
module, _, function = sys.argv[1].partition(":")
sys.argv = ["enforcement-ledger", *sys.argv[2:]]
getattr(importlib.import_module(module), function)()
"""


def test_ctrl_c_once_the_command_is_done_changes_nothing() -> None:
    """kl21: a Ctrl-C just after an append committed and said so ended the process as
    killed by SIGINT (or with a traceback), with nothing said."""
    done = _console_script_under(_INTERRUPTED_AT_EXIT_PROBE, "--version")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout.startswith("enforcement-ledger, version ")
