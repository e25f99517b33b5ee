"""What the command line refuses before any work: values that would silently act on
something other than what the admin or researcher sees on their screen."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger.application import Ledger
from ledger.events import EventInputError, parse_event
from ledger.location import StoreLocation
from tests.conftest import Store
from tests.ledger_helpers import CLI, account, ev, export, jsonl, reject

FOLLOWERS = (
    "record", "followers-observed", "--account", "twitter:jack", "--count", "3",
    "--occurred-at", "2024-01-02", "--source", "s",
)  # fmt: skip


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Store:
    store = Store(str(tmp_path / "ledger.db"), "sqlite", tmp_path)
    store.ok("init")
    store.append(account("twitter:jack"), account("twitter:other"))
    return store


@pytest.mark.parametrize(
    ("actor", "problem"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        (" jane", "must not start or end with whitespace"),
        ("ev\x1b[31mil", "must not contain control characters or invisible ones"),
        ("jane\nApproved by: legal", "must not contain control characters"),
        ("\u202enaej", "must not contain control characters or invisible ones"),
        ("a" * 201, "must be at most 200 characters; it has 201"),
        ("jane\u200fdoe", "must not contain control characters or invisible ones"),
        ("jane\u2028doe", "must not contain control characters or invisible ones"),
        ("bob\u00ad", "must not contain control characters or invisible ones"),  # soft hyphen
        ("bob\U000e0041", "must not contain control characters or invisible ones"),  # a tag
        ("bob\u3164", "must not contain control characters or invisible ones"),  # a filler
        ("\u2800", "must not contain control characters or invisible ones"),  # braille blank
        ("\u200cbob", "must not contain control characters or invisible ones"),  # not between
        # rv31: after a letter Python's Unicode has no name for, idna's check raised.
        ("\U00017000\u200d", "must not contain control characters or invisible ones"),
        ("\u0301", "must hold a letter, digit or sign people can see"),  # a mark alone
    ],
)
def test_an_actor_that_people_could_not_read_is_refused(
    sqlite_store: Store, actor: str, problem: str
) -> None:
    # The actor is stored in the signed leaf for good: it is checked before anything.
    for command in ([*FOLLOWERS, "--actor", actor], ["append", "--actor", actor, "-"]):
        given = jsonl(ev("followers_observed", "2024-01-02", account="twitter:jack", count=3))
        reject(
            sqlite_store,
            *command,
            input=given,
            code=2,
            expect=(f"Invalid value for --actor (or $ENFORCEMENT_LEDGER_ACTOR): {problem}",),
        )


@pytest.mark.parametrize(
    "actor",
    [
        "Jane Doe (T&S, Tehran desk) ✓",
        "می\u200cخواهم",  # Persian: a zero-width non-joiner between letters that join
        "क्\u200dष",  # Devanagari: a zero-width joiner in a conjunct
        "José O'Neil <jose@example.org>",
    ],
)
def test_a_readable_actor_is_recorded_as_given(sqlite_store: Store, actor: str) -> None:
    sqlite_store.ok(*FOLLOWERS, "--actor", actor)
    assert export(sqlite_store)[-1]["actor"] == actor


def test_the_library_refuses_such_an_actor_too(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "ledger.db"), "sqlite", tmp_path)
    store.ok("init")
    ledger = Ledger(StoreLocation.parse(store.url))
    try:
        event = parse_event(jsonl(account("twitter:jack")))
        with pytest.raises(EventInputError, match=r"actor: must not contain control characters"):
            ledger.append([(1, event)], actor="x\ny", now=datetime.now(UTC))
    finally:
        ledger.close()
    assert export(store) == []


@pytest.mark.parametrize(
    ("command", "option"),
    [
        ([*FOLLOWERS, "--account", "twitter:other"], "--account"),
        (["timeline", "--account", "twitter:jack", "--json", "--account", "x:y"], "--account"),
        (["counts", "--policy", "a", "--policy=b"], "--policy"),
        (["status", "twitter:jack", "--as-of", "2024-01-01", "--as-of", "2024-01-03"], "--as-of"),
    ],
)
def test_an_option_that_takes_one_value_given_twice_is_refused(
    sqlite_store: Store, command: list[str], option: str
) -> None:
    # Click would keep the last silently: an edited command line acting on another
    # account than the one it shows first.
    reject(
        sqlite_store,
        *command,
        code=2,
        expect=(f"Error: {option} is given more than once; it takes one value: give it once",),
    )


def test_help_is_shown_even_with_a_repeated_option(sqlite_store: Store) -> None:
    result = sqlite_store.ok("timeline", "--limit", "1", "--limit", "2", "--help")
    assert result.stdout.startswith("Usage: cli timeline [OPTIONS]")


def test_a_repeated_store_option_is_refused_and_repeatable_ones_are_not(
    sqlite_store: Store,
) -> None:
    result = sqlite_store.run("--store", "elsewhere.db", "timeline")  # --store twice
    assert result.exit_code == 2
    assert "--store is given more than once" in result.stderr
    types = ("--type", "account_registered", "--type", "followers_observed")
    assert len(sqlite_store.timeline(*types)) == 2
    assert sqlite_store.ok("timeline", "--json", "--json").stdout.startswith("[")


@pytest.mark.parametrize(
    "command",
    [
        ["timeline", "--actor", ""],
        ["timeline", "--account", ""],
        ["counts", "--policy", ""],
        ["timeline", "--type", "account_registered", "--type", ""],
        ["accounts", "--platform", ""],
        ["posts", "--subject", ""],
        ["appeals", "--platform", ""],
        ["subjects", "--subject", ""],
        ["counts", "--since", ""],
        ["timeline", "--until", ""],
        ["timeline", "--recorded-since", ""],
        ["accounts", "--as-of", ""],
        ["posts", "--known-at", ""],
        ["status", "twitter:jack", "--as-of", ""],
    ],
)
def test_a_filter_given_an_empty_value_is_refused(sqlite_store: Store, command: list[str]) -> None:
    # `--account "$ACCOUNT"` with the variable unset answered for the whole ledger,
    # `--as-of "$T"` for now.
    option = next(arg for arg in reversed(command) if arg.startswith("--"))
    reject(
        sqlite_store,
        *command,
        code=2,
        expect=(f"Invalid value for '{option}': needs a value (given ''); leave the option out",),
    )


def test_a_list_option_given_a_comma_separated_value_says_to_repeat_it(
    sqlite_store: Store,
) -> None:
    reject(
        sqlite_store,
        "record", "account-restricted", "--account", "twitter:jack", "--policy", "p",
        "--restrictions", "read_only, reduced_reach", "--occurred-at", "2024-01-02",
        "--source", "s",
        code=2,
        expect=(
            "Invalid value for --restrictions: one value each time, repeated: "
            "--restrictions read_only --restrictions reduced_reach "
            "(given 'read_only, reduced_reach')",
        ),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("command", "param"),
    [
        (["status", "--history", ""], "ACCOUNT"),  # it folded every account's history
        (["posts", ""], "[ACCOUNT]"),
        (["appeals", " "], "[ACCOUNT]"),
        (["copy", ""], "[SOURCE]"),  # it copied from ./enforcement-ledger.db
    ],
)
def test_an_argument_given_empty_is_refused(
    sqlite_store: Store, command: list[str], param: str
) -> None:
    reject(
        sqlite_store,
        *command,
        code=2,
        expect=(f"Invalid value for '{param}': needs a value (given ", "); give one"),
    )


@pytest.mark.parametrize("option", ["--store", "--key-file"])
def test_an_empty_store_or_key_file_is_refused_not_the_default_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str
) -> None:
    # `--store "$STORE"` with the variable unset acted on ./enforcement-ledger.db.
    from click.testing import CliRunner

    from cli.main import cli

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, [option, "", "init"])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.stderr
    assert "needs a value (given '')" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_unusable_actor_names_where_it_came_from(sqlite_store: Store) -> None:
    result = sqlite_store.run(*FOLLOWERS, env={"ENFORCEMENT_LEDGER_ACTOR": "x\x1by"})
    assert result.exit_code == 2, result.output
    assert "Invalid value for --actor (or $ENFORCEMENT_LEDGER_ACTOR): " in result.stderr
    result = sqlite_store.run(*FOLLOWERS, env={"ENFORCEMENT_LEDGER_ACTOR": None,  # type: ignore[dict-item]
                                               "USER": "b\x1bd", "LOGNAME": "b\x1bd"})  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "Invalid value for the OS user name, the actor by default; give --actor: " in (
        result.stderr
    )


@pytest.mark.parametrize(
    "name", ["ENFORCEMENT_LEDGER_STORE", "ENFORCEMENT_LEDGER_KEY_FILE", "ENFORCEMENT_LEDGER_ACTOR"]
)
def test_a_setting_in_the_environment_set_but_empty_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # Click reads it as unset: `export ENFORCEMENT_LEDGER_STORE="$STORE"` with $STORE
    # unset acted on ./enforcement-ledger.db, as --store "" did.
    from click.testing import CliRunner

    from cli.main import cli

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["init"], env={name: ""})
    assert result.exit_code == 2, result.output
    assert f"{name} is set but empty: unset it, or give it a value" in result.stderr
    assert list(tmp_path.iterdir()) == []


def _examples(help_text: str) -> list[list[str]]:
    """The commands of a help text's Example block, continuation lines joined."""
    import shlex

    block = help_text.split("Example", 1)[1].split("\n", 1)[1]
    joined = block.replace("\\\n", " ")
    return [
        shlex.split(line)[1:]  # without the program name
        for line in joined.splitlines()
        if line.strip().startswith("enforcement-ledger ")
    ]


@pytest.mark.parametrize("group", [(), ("record",)], ids=["enforcement-ledger", "record"])
def test_the_examples_that_start_from_nothing_run_as_shown(
    tmp_path: Path, group: tuple[str, ...]
) -> None:
    """The root help's example (and record's) is a sequence a new user types into a new
    store: it ran `record account-suspended` on an account nobody had registered."""
    store = Store(str(tmp_path / "fresh.db"), "sqlite", tmp_path)
    if group:
        store.ok("init")
    commands = _examples(store.ok(*group, "--help").stdout)
    assert len(commands) >= 2
    for command in commands:
        store.ok(*command)
    assert store.status("twitter:example")["status"] == "suspended"


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_the_summary_is_given_before_the_read_side_catches_up(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch is committed before the read models catch up: a failure (or Ctrl-C)
    there came with no summary, as if nothing had been appended."""
    from cli import main

    def fails(session: object) -> None:
        raise RuntimeError("catch-up failed")

    monkeypatch.setattr(main, "_after_append", fails)
    for args in (["append", "-"], ["record", "account-registered", "--account", "x:b",
                                   "--platform", "x", "--handle", "b", "--occurred-at",
                                   "2020-01-01", "--source", "s"]):  # fmt: skip
        line = jsonl(account("x:a", "2020-01-01"))
        result = store.run(*args, input=line if args[0] == "append" else None)
        assert isinstance(result.exception, RuntimeError)
        assert result.stdout.startswith("Appended 1 event(s), sequence ")
    assert len(export(store)) == 2


def test_a_closed_standard_output_is_refused_before_anything_is_done(
    sqlite_store: Store,
) -> None:
    """`… >&-`: listings failed with exit 70 ("internal failure", with advice to check
    the store for tampering); other commands did their work and said nothing."""
    event = jsonl(account("twitter:closed", "2020-01-01"))
    before = export(sqlite_store)
    for args in (["timeline"], ["append", "-"]):
        done = subprocess.run(
            [*CLI, "--store", sqlite_store.url, *args],
            input=event.encode(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=lambda: os.close(1),  # as a shell's `>&-` leaves it
            check=False,
        )
        assert done.returncode == 1, done
        assert done.stderr.decode().startswith("Error: standard output is closed"), done
    assert export(sqlite_store) == before  # nothing appended


def test_a_global_option_given_after_the_command_is_said_to_go_before_it(
    sqlite_store: Store,
) -> None:
    """click's "did you mean" named the command's own options instead ('--trusted'
    for verify's --store)."""
    for args, hint in [
        (["timeline", "--store", "x.db"], "--store x.db timeline"),
        (["verify", "--store=my x.db"], "--store 'my x.db' verify"),
        (["record", "account-removed", "--store", "x.db"], "--store x.db record account-removed"),
        (
            ["prove", "inclusion", "1", "--key-file", "k"],
            "--key-file k --store {store} prove inclusion 1",  # the helper's --store kept
        ),
        # The rest of the line kept: without it the hint ran another command.
        (
            ["status", "twitter:x", "--store", "d.db", "--as-of", "2024-01-01"],
            "--store d.db status twitter:x --as-of 2024-01-01",
        ),
        (
            ["record", "account-removed", "--store", "d.db", "--policy", "a b"],
            "--store d.db record account-removed --policy 'a b'",
        ),
        # Options given before the command are kept too (--store, given there by the
        # test's helper, gives way to the one given after).
        (
            ["--key-file", "k", "timeline", "--store", "s.db", "--limit", "2"],
            "--store s.db --key-file k timeline --limit 2",
        ),
    ]:
        message = reject(sqlite_store, *args, code=2).splitlines()[-1]
        option = hint.split()[0]
        assert message == (
            f"Error: {option} is a global option, given before the command: "
            f"enforcement-ledger {hint.format(store=sqlite_store.url)}"
        )
    # demo takes a --store of its own.
    demo = sqlite_store.tmp_path / "demo.db"
    assert "Demo ledger: " in sqlite_store.ok("demo", "--store", str(demo)).stdout


def test_reason_on_a_record_type_without_one_points_to_note(sqlite_store: Store) -> None:
    # click suggested '--json'.
    message = reject(sqlite_store, "record", "account-removed", "--reason", "x", code=2)
    assert message.splitlines()[-1] == (
        "Error: No such option '--reason': account-removed has no reason field; say why in --note"
    )


def test_a_closed_standard_input_is_refused_before_anything_is_done(
    sqlite_store: Store,
) -> None:
    """`append - <&-` failed with exit 70 ("internal failure", with advice to check the
    store for tampering): click found no stream for stdin."""
    before = export(sqlite_store)
    for args in (["append", "-"], ["append"]):
        done = subprocess.run(
            [*CLI, "--store", sqlite_store.url, *args],
            capture_output=True,
            preexec_fn=lambda: os.close(0),  # as a shell's `<&-` leaves it
            check=False,
        )
        assert done.returncode == 1, done
        assert done.stderr.decode() == (
            "Error: standard input is closed; nothing was read or written\n"
        ), done
    assert export(sqlite_store) == before


def test_a_byte_that_is_not_utf8_in_an_argument_is_named_as_that(sqlite_store: Store) -> None:
    """It was blamed on the output's encoding ("from the ledger; set
    PYTHONIOENCODING=utf-8"), which changed nothing; in the actor, on an invisible
    character."""
    store = sqlite_store.url.encode()
    for args in ([b"status", b"twitter:ex\xffample"], [b"timeline", b"--account", b"x:\xff"]):
        done = subprocess.run(
            [*(part.encode() for part in CLI), b"--store", store, *args],
            capture_output=True,
            check=False,
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        )
        assert done.returncode == 1, done
        assert done.stderr == (
            b"Error: '\\udcff' is no text: the command line (or environment) holds a byte "
            b"that is not UTF-8; give the value in UTF-8\n"
        )
    done = subprocess.run(
        [*CLI, "--store", sqlite_store.url, "append", "-"],
        input=b"",
        capture_output=True,
        check=False,
        env={**os.environ, "ENFORCEMENT_LEDGER_ACTOR": os.fsdecode(b"a\xffb")},
    )
    assert done.returncode == 2, done
    assert b"must be UTF-8 text: it holds a byte that is not UTF-8" in done.stderr


@pytest.mark.parametrize("value", ["0", "", "false", "off"])
def test_debug_set_to_no_shows_no_traceback(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from cli.main import _debugging

    monkeypatch.setenv("ENFORCEMENT_LEDGER_DEBUG", value)
    assert not _debugging()  # "0" turned tracebacks on
    monkeypatch.setenv("ENFORCEMENT_LEDGER_DEBUG", "1")
    assert _debugging()


def test_shell_completion_offers_files_for_the_store_and_the_event_types() -> None:
    def complete(words: str) -> list[str]:
        env = {
            **os.environ,
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - 1),
            "_ENFORCEMENT_LEDGER_COMPLETE": "bash_complete",
        }
        done = subprocess.run(CLI, env=env, capture_output=True, text=True, check=False)
        return done.stdout.splitlines()

    assert complete("enforcement-ledger timeline --type account_re") == [
        "plain,account_registered",
        "plain,account_restricted",
        "plain,account_reinstated",
        "plain,account_removed",
    ]
    assert complete("enforcement-ledger --store led") == ["file,led"]
    # A record flag's closed set of values (it completed nothing).
    assert complete("enforcement-ledger record appeal-decided --outcome o") == ["plain,overturned"]
    assert complete("enforcement-ledger record subject-registered --kind p") == ["plain,person"]


def test_a_failure_after_the_append_committed_says_it_is_committed(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store error after the commit (a warning's query, the read side) was told as
    it would be before one ("… wrote nothing"): a `record` run again made a second event."""
    from cli import main
    from ledger.location import StoreError

    sqlite_store.ok("append", "-", input=jsonl(account("twitter:a", "2024-01-01")))
    before = len(export(sqlite_store))

    def failing(self: object, result: object) -> None:
        raise StoreError("cannot read the store", "nothing was written")

    monkeypatch.setattr(main.Session, "warn_after_append", failing)
    result = sqlite_store.fail(
        "record", "followers-observed", "--account", "twitter:a", "--count", "3",
        "--occurred-at", "2024-02-01", "--source", "s",
    )  # fmt: skip
    assert result.stdout.startswith(f"Appended 1 event(s), sequence {before}..{before}")
    assert result.stderr == (
        f"Error: the append above is committed (1 event(s), sequence {before}..{before}): do "
        "not append it again; what failed after it: cannot read the store; nothing was "
        "written\n"
    ), result.stderr
    assert len(export(sqlite_store)) == before + 1


def test_an_actor_cut_in_the_message_never_ends_inside_an_escape(tmp_path: Path) -> None:
    # The repr's cut at 100 fell on "\x1" of "\x1b": read as another character's escape.
    actor = "a" * 95 + "\x1b" + "b" * 10  # repr: the escape at characters 97-100
    store = Store(str(tmp_path / "ledger.db"), "sqlite", tmp_path)
    store.ok("init")
    stderr = reject(store, *FOLLOWERS, "--actor", actor, code=2)
    assert "(given '" + "a" * 95 + "…)" in " ".join(stderr.split())
    ledger = Ledger(StoreLocation.parse(store.url))
    try:
        event = parse_event(jsonl(account("twitter:jack")))
        with pytest.raises(EventInputError) as refused:
            ledger.append([(1, event)], actor=actor, now=datetime.now(UTC))
    finally:
        ledger.close()
    assert str(refused.value).endswith("(given '" + "a" * 95 + "…)"), str(refused.value)
