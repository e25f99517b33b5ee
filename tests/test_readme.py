"""README's console examples are run, in order, and must print what README shows.

The demo's output is compared whole (its temporary path shortened as README does).
The examples tell three stories: an admin correcting a mistake in the demo store
(SQLite), an auditor verifying a signed ledger (SQLite), and setting up a ledger on
PostgreSQL (in a schema of this run's own, roles dropped after). Each story's
commands run through bash in a fresh directory. What differs from run to run is
masked on both sides before comparing: record times (any time from 2025 on: the seed
story ends in 2024, README's runs were later), keys, roots and signatures (base64),
key ids and origins' random parts (8 hex digits). In README, a line "…" stands for
any number of lines and a line ending in "…" for any line it begins.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import PG_URL, drop_roles, drop_schema, require_postgres

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
# The command lives beside the interpreter running the tests (the venv's bin).
BIN = Path(sys.executable).parent

Step = tuple[str, list[str]]  # a command and the lines README shows it printing


def console_blocks(text: str) -> list[tuple[int, list[Step]]]:
    """Each ```console block (with its line number): commands and their output."""
    blocks: list[tuple[int, list[Step]]] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        if lines[index].strip() != "```console":
            index += 1
            continue
        start = index + 1
        index += 1
        steps: list[Step] = []
        while index < len(lines) and lines[index].strip() != "```":
            line = lines[index]
            if line.startswith("$ "):
                command = line[2:]
                while command.endswith("\\"):
                    index += 1
                    command = command[:-1] + lines[index].strip()
                steps.append((command, []))
            elif steps:
                steps[-1][1].append(line)
            index += 1
        if steps:
            blocks.append((start, steps))
        index += 1
    return blocks


_RECORD_TIME = re.compile(r"\b(20[2-9]\d|2[1-9]\d\d)-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")
_HEX8 = re.compile(r"\b[0-9a-f]{8}\b")


def _masked(line: str) -> str:
    def time(match: re.Match[str]) -> str:
        return "<TIME>" if int(match[1]) >= 2025 else match[0]

    line = _RECORD_TIME.sub(time, line.rstrip())
    return _HEX8.sub("<HEX>", _BASE64.sub("<B64>", line))


def _matches(shown: list[str], printed: list[str]) -> bool:
    """README's lines against the printed ones, with "…" as described above."""
    if not shown:
        return not printed
    head, rest = shown[0], shown[1:]
    if head == "…":
        return any(_matches(rest, printed[i:]) for i in range(len(printed) + 1))
    if not printed:
        return False
    line = printed[0]
    same = line.startswith(head[:-1]) if head.endswith("…") else line == head
    return same and _matches(rest, printed[1:])


def _story(first_line: int, last_line: int) -> list[tuple[int, list[Step]]]:
    return [
        (line, steps)
        for line, steps in console_blocks(README.read_text(encoding="utf-8"))
        if first_line <= line <= last_line
    ]


def _section_lines(heading: str) -> tuple[int, int]:
    """The README line range of a '## ' section."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines, 1) if line == f"## {heading}")
    end = next((i for i, line in enumerate(lines, 1) if i > start and line.startswith("## ")), 0)
    return start, end or len(lines)


def run_story(workdir: Path, blocks: list[tuple[int, list[Step]]], env: dict[str, str]) -> None:
    stamps: list[str] = []
    for block_line, steps in blocks:
        for command, shown in steps:
            if command.startswith("cat ") and not (workdir / command.split()[1]).exists():
                # README shows the file it reads: that is how the file is made here.
                (workdir / command.split()[1]).write_text("\n".join(shown) + "\n")
            if command.startswith("export "):
                # Each command runs in its own bash: an export is carried over here.
                name, _, value = command.removeprefix("export ").partition("=")
                env[name] = shlex.split(value)[0]
                continue
            if "# between the two" in command:
                # A record time between the two appends before it, as at README's run.
                command = _RECORD_TIME.sub(stamps[-2], command)
            result = subprocess.run(
                ["bash", "-c", command],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            stamps.append(datetime.now(UTC).isoformat().replace("+00:00", "Z"))
            printed = (result.stdout + result.stderr).splitlines()
            expected_failure = any(line.startswith("Error:") for line in shown)
            assert (result.returncode != 0) == expected_failure, (command, result)
            masked_shown = [_masked(line) for line in shown]
            masked_printed = [_masked(line) for line in printed]
            assert _matches(masked_shown, masked_printed), (
                f"README.md line {block_line}: `{command}` printed:\n"
                + "\n".join(printed)
                + "\n\nREADME shows:\n"
                + "\n".join(shown)
            )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "ledger" / "data").mkdir(parents=True)
    shutil.copy(ROOT / "ledger" / "data" / "seed.jsonl", tmp_path / "ledger" / "data")
    names = ("ENFORCEMENT_LEDGER_STORE", "ENFORCEMENT_LEDGER_KEY_FILE", "ENFORCEMENT_LEDGER_ACTOR")
    environment = {k: v for k, v in os.environ.items() if k not in names}
    environment["PATH"] = f"{BIN}{os.pathsep}{environment.get('PATH', '')}"
    return environment


def test_the_admin_story_prints_what_readme_shows(tmp_path: Path, env: dict[str, str]) -> None:
    # The store `make demo` builds, at the default path.
    subprocess.run(
        [BIN / "enforcement-ledger", "demo", "--store", "enforcement-ledger.db"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        check=True,
    )
    blocks = _story(
        _section_lines("Concepts")[0], _section_lines("Verifying a ledger as an auditor")[0]
    )
    assert len(blocks) >= 3, blocks
    run_story(tmp_path, blocks, env)


def test_the_auditor_story_prints_what_readme_shows(tmp_path: Path, env: dict[str, str]) -> None:
    # A store holding the seed events, as the section says.
    env = {**env, "ENFORCEMENT_LEDGER_STORE": "ledger.db"}
    for args in (["init"], ["append", "ledger/data/seed.jsonl"]):
        subprocess.run(
            [BIN / "enforcement-ledger", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            check=True,
        )
    (tmp_path / "more.jsonl").write_text(
        '{"type":"followers_observed","account":"twitter:khamenei_ir","count":1100000,'
        '"occurred_at":"2024-03-01","source":"s"}\n'
    )
    blocks = _story(*_section_lines("Verifying a ledger as an auditor"))
    assert len(blocks) >= 4, blocks
    run_story(tmp_path, blocks, env)


def test_the_postgresql_story_prints_what_readme_shows(tmp_path: Path, env: dict[str, str]) -> None:
    require_postgres()
    # README's schema and server, made this run's own: `init --roles` makes roles
    # named after the schema, and roles belong to the whole server.
    schema = f"readme_{uuid.uuid4().hex[:10]}"

    def ours(text: str) -> str:
        return text.replace("postgresql://postgres@127.0.0.1:5432/test", PG_URL).replace(
            "newsroom", schema
        )

    blocks = [
        (line, [(ours(command), [ours(s) for s in shown]) for command, shown in steps])
        for line, steps in _story(*_section_lines("Running on PostgreSQL"))
    ]
    assert blocks, "README's PostgreSQL section has no console example"
    try:
        run_story(tmp_path, blocks, env)
    finally:
        drop_schema(schema)
        drop_roles(f"ledger_{schema}")


def test_the_demo_prints_what_readme_shows(tmp_path: Path, env: dict[str, str]) -> None:
    text = README.read_text(encoding="utf-8")
    intro = "Real output of `make demo` (store path shortened), after make's own lines:"
    shown = text.split(intro, 1)[1].split("```text\n", 1)[1].split("\n```", 1)[0].splitlines()
    result = subprocess.run(
        [BIN / "enforcement-ledger", "demo"],
        cwd=tmp_path,
        env={**env, "TMPDIR": str(tmp_path)},  # its fresh store goes with the test's files
        capture_output=True,
        text=True,
        check=True,
    )
    # The demo's store is a fresh temporary directory: README shortens its name.
    store = re.search(r"Created ledger at (\S+)", result.stdout)
    assert store is not None, result.stdout
    short = re.sub(r"^.*/enforcement-ledger-demo-[^/]+", "/tmp/enforcement-ledger-demo-…", store[1])
    printed = result.stdout.replace(f"--store {store[1]} ", "--store … ").replace(store[1], short)
    assert [line.rstrip() for line in printed.splitlines()] == [line.rstrip() for line in shown]


def test_the_field_readme_says_an_indefinite_suspension_is_told_by_is_one_it_has() -> None:
    # It named `reason`, which account_suspended does not have.
    from ledger.events import AccountSuspended

    text = " ".join(README.read_text(encoding="utf-8").split())
    said = re.search(r"an indefinite one is `account_suspended` .*?\(say which in ([^)]*)\)", text)
    assert said is not None
    fields = re.findall(r"`(\w+)`", said.group(1))
    assert fields
    assert [f for f in fields if f not in AccountSuspended.model_fields] == []
