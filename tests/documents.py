"""The documents' code blocks: found (those inside list items too), and run as a reader pastes them."""

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import sessions

from autograder import KIT, SERVER_FILES, SOLUTION


def blocks(path: Path) -> list[tuple[str, str]]:
    """(info string, body) of every fenced code block, those indented in a list item included."""
    found = re.findall(r"^( *)```([^\n]*)\n(.*?)^\1```", path.read_text(), flags=re.MULTILINE | re.DOTALL)
    return [(info, textwrap.dedent(body)) for _, info, body in found]


def runnable(path: Path) -> list[str]:
    return [body for info, body in blocks(path) if info.split()[1:2] == ["runnable"]]


def kit_files() -> list[str]:
    """The kit's files as a clone has them: those git tracks, and new ones it does not ignore (never a
    course folder, results or a venv that a reader's earlier run left in the working tree)."""
    if not (KIT / ".git").exists():  # an unpacked copy of the kit, not a clone: every file but caches
        skip = {".venv", "results", "__pycache__", ".ruff_cache"}
        return [str(p.relative_to(KIT)) for p in KIT.rglob("*") if p.is_file() and not skip & set(p.parts)]
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=KIT, capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return [name for name in listed.split("\0") if name and (KIT / name).is_file()]


def copy_of_the_kit(folder: Path) -> Path:
    """A copy of the kit whose assignment/ holds the reference, so the students' commands run against it."""
    copy = folder / "concurrency-lab"
    for name in kit_files():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(KIT / name, copy / name)
    for name in SERVER_FILES:
        shutil.copyfile(SOLUTION / name, copy / "assignment" / name)
    return copy


def paste_in_order(copy: Path, document: Path) -> str:
    """Run a document's runnable blocks as a reader pastes them: one shell, in order, `cd` included, in
    a copy of the kit; what they printed, after checking that they succeeded and left nothing running."""
    commands = "\n".join(runnable(document))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    shell = sessions.Session(["bash", "-euo", "pipefail", "-c", commands], merge_stderr=True, cwd=copy, env=env)
    try:
        ended = shell.ended(480)
        left = shell.left()  # a background job stays in the shell's group
    finally:
        status, output, _ = shell.finish()  # and so does a server a failed block left behind
    assert ended, f"the blocks ran past 480 s: {output[-4000:]}"
    assert status == 0, output[-4000:]
    assert "Traceback" not in output
    if "curl -i http://127.0.0.1:$port/hello" in commands:
        assert "HTTP/1.1 200 OK" in output and "GET /hello HTTP/1.1" in output  # curl -i
    assert "[Client" not in output  # the servers' logs went to their file, not over the tools' output
    assert left == [], "a background server was not waited for"
    return output
