"""The handouts and the README tell the truth: their runnable commands run, their rubric is the
grader's, the grader messages they quote are the grader's, and the two languages match."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import KIT, SERVER_FILES, SOLUTION

HANDOUTS = {"en": KIT / "handout.md", "ko": KIT / "handout.ko.md"}
QUOTE = {"en": "> **The grader says:** `", "ko": "> **채점기 메시지:** `"}


def blocks(path: Path) -> list[tuple[str, str]]:
    """(info string, body) of every fenced code block."""
    return re.findall(r"^```([^\n]*)\n(.*?)^```", path.read_text(), flags=re.MULTILINE | re.DOTALL)


def runnable(path: Path) -> list[str]:
    return [body for info, body in blocks(path) if info.split()[1:2] == ["runnable"]]


def test_both_handouts_have_the_same_sections_commands_and_numbers():
    en, ko = (HANDOUTS[lang].read_text() for lang in ("en", "ko"))

    def outline(text):
        return [(len(m[1]), m[2]) for m in re.finditer(r"^(#+) (\d*)", text, flags=re.MULTILINE)]

    assert outline(en) == outline(ko) and len(outline(en)) >= 12
    assert blocks(HANDOUTS["en"]) == blocks(HANDOUTS["ko"])
    numbers = re.compile(r"(?<![\d.])\d+(?:\.\d+)?(?!\d)")  # no \b: in Korean, a number touches its unit
    assert sorted(numbers.findall(en)) == sorted(numbers.findall(ko))
    assert [q.split("`")[1] for q in en.splitlines() if q.startswith(QUOTE["en"])] == [
        q.split("`")[1] for q in ko.splitlines() if q.startswith(QUOTE["ko"])
    ]


@pytest.mark.parametrize("lang", HANDOUTS)
def test_the_handout_quotes_the_graders_own_rubric(lang):
    rubric = subprocess.run(
        [sys.executable, "-m", "autograder", "rubric"], cwd=KIT, capture_output=True, text=True, check=True
    ).stdout
    assert rubric in HANDOUTS[lang].read_text()


@pytest.mark.parametrize("lang", HANDOUTS)
def test_the_grader_messages_the_handout_quotes_are_the_graders_own(lang):
    sources = [*(KIT / "autograder" / "checks").glob("*.py"), SOLUTION / "handler.py"]
    code = "".join(path.read_text() for path in sources).replace("\\\\", "\\")
    quotes = [line.split("`")[1] for line in HANDOUTS[lang].read_text().splitlines() if line.startswith(QUOTE[lang])]
    assert len(quotes) >= 5
    for quote in quotes:
        assert quote in code, quote


def test_the_tasks_of_the_handout_are_the_tasks_of_the_skeletons():
    row = r"^\| (\d+)(?: \(optional\))? \| `(\w+\.py)` \| `(\w+)\("
    tasks = re.findall(row, HANDOUTS["en"].read_text(), flags=re.MULTILINE)
    assert [int(n) for n, _, _ in tasks] == list(range(1, 11))
    for number, file, function in tasks:
        skeleton = (KIT / "assignment" / file).read_text()
        assert re.search(rf"def {function}\(.*\n\s+\"\"\"Task {number}[ .]", skeleton), (number, function)


@pytest.fixture(scope="module")
def kit_copy(tmp_path_factory) -> Path:
    """A copy of the kit whose assignment/ holds the reference, so the students' commands run against it."""
    copy = tmp_path_factory.mktemp("kit") / "concurrency-lab"
    shutil.copytree(KIT, copy, ignore=shutil.ignore_patterns(".git", ".venv", "results", "__pycache__"))
    for name in SERVER_FILES:
        shutil.copyfile(SOLUTION / name, copy / "assignment" / name)
    return copy


COMMANDS = sorted({body for path in [*HANDOUTS.values(), KIT / "README.md"] for body in runnable(path)})


def test_there_are_runnable_commands_in_every_document():
    for path in [*HANDOUTS.values(), KIT / "README.md"]:
        assert runnable(path), path.name


@pytest.mark.parametrize("commands", COMMANDS, ids=lambda c: c.splitlines()[0][:50])
def test_every_runnable_command_runs(kit_copy, commands):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    shell = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", commands],
        cwd=kit_copy,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = shell.communicate(timeout=150)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)  # a server a failed block left behind
    assert shell.returncode == 0, output[-3000:]
    assert "Traceback" not in output
    if "curl -i" in commands:
        assert "HTTP/1.1 200 OK" in output and "GET /hello HTTP/1.1" in output
    if "autograder grade" in commands:
        assert "12 / 12 points" in output
