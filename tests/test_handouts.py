"""The handouts and the README tell the truth: their runnable commands run, their rubric is the
grader's, the grader messages they quote are the grader's, and the two languages match."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from autograder import KIT, SERVER_FILES, SOLUTION

HANDOUTS = {"en": KIT / "handout.md", "ko": KIT / "handout.ko.md"}
QUOTE = {"en": "> **The grader says:** `", "ko": "> **채점기 메시지:** `"}


def blocks(path: Path) -> list[tuple[str, str]]:
    """(info string, body) of every fenced code block, those indented in a list item included."""
    found = re.findall(r"^( *)```([^\n]*)\n(.*?)^\1```", path.read_text(), flags=re.MULTILINE | re.DOTALL)
    return [(info, textwrap.dedent(body)) for _, info, body in found]


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


@pytest.mark.parametrize("path", [*HANDOUTS.values(), KIT / "README.md"], ids=lambda p: p.name)
def test_the_markdown_renders_no_emphasis_is_left_as_stars(path):
    """CommonMark does not close `*...*` after punctuation when a letter follows (Hangul included):
    `*시작 방식(start method)*에` shows its stars. Such stars are left in the rendered text."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(path.read_text())
    inline = [child for token in tokens if token.type == "inline" for child in token.children or []]
    texts = [child.content for child in inline if child.type == "text"]  # not code spans
    assert [text for text in texts if "*" in text] == []


# Each quote of §10 is what the grader prints: tests/test_bugs.py grades the mistake and asserts it.


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


NOT_RUN = {  # the blocks the tests do not paste, by first line, and why
    "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt": "the set-up itself: CI runs exactly it",
    "python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt": "the same set-up",
    "locust -f locustfile.py --master": "load from several machines",
    "python -m autograder compare --preset report": "10000 users: minutes, and a raised open-file limit",
    "python -m autograder compare  ": "the quick preset: a minute; the block after it runs the same code, shorter",
    "python -m autograder compare assignment --preset lesson": "five minutes; the short sweep beside it runs",
}
DOCUMENTS = [KIT / "README.md", HANDOUTS["en"]]  # the Korean handout's blocks are the English one's (tested above)


def test_every_shell_block_is_run_by_the_tests_or_says_why_not():
    for path in [*DOCUMENTS, HANDOUTS["ko"]]:
        assert runnable(path), path.name
        for info, body in blocks(path):
            if info.split()[:1] == ["bash"] and "runnable" not in info:
                assert any(body.startswith(first) for first in NOT_RUN), (path.name, body[:80])


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_a_documents_blocks_run_pasted_in_order_into_one_shell(kit_copy, document):
    """As a reader pastes them: one shell, in order, `cd` included, in a fresh copy of the kit."""
    commands = "\n".join(runnable(document))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
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
        output, _ = shell.communicate(timeout=480)
        left = [p.info["cmdline"] for p in psutil.process_iter(["cmdline"]) if _group(p.pid) == shell.pid]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)  # a server a failed block left behind
    assert shell.returncode == 0, output[-4000:]
    assert "Traceback" not in output
    assert "HTTP/1.1 200 OK" in output and "GET /hello HTTP/1.1" in output  # curl -i
    assert "[Client" not in output  # the servers' logs went to their file, not over the tools' output
    assert left == [], "a background server was not waited for"
    if document == HANDOUTS["en"]:
        assert "12 / 12 points" in output  # the grade block, against the reference copied into assignment/
    else:
        assert "0 without a score" in output and (kit_copy / "mycourse" / "grades.csv").exists()


def _group(pid: int) -> int | None:
    """The process group of pid (a non-interactive shell's background jobs stay in the shell's group)."""
    with contextlib.suppress(ProcessLookupError):
        return os.getpgid(pid)
    return None
