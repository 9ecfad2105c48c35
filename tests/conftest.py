"""Fixtures: servers of the reference (or of another submission) started as real subprocesses on
127.0.0.1 with port 0, each killed with its whole process tree after the test, however it ends."""

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from xdist.scheduler import LoadScopeScheduling

from autograder import ALL_MODES, KIT, MODES, OPTIONAL_FILES, SERVER_FILES, SOLUTION
from autograder.harness import TAG, Server

StartServer = Callable[..., Server]

# pytest-xdist hands out the tests one at a time (two ahead per worker), in the order collected, except the
# files whose module-scoped fixtures are expensive: each of those goes whole to one worker. The longest
# first (measured with --durations=0): a long one handed out last would run alone at the end.
WHOLE_FILES = ("test_course.py", "test_bundles.py")
LONGEST_FIRST = (
    "test_course.py", "test_docs.py", "test_handouts.py", "test_grader.py", "test_report_style.py", "test_bugs.py",
    "test_attacks.py", "test_network.py", "test_fairness.py", "test_platforms.py", "test_container.py",
    "test_nbgrader_config.py", "test_bundles.py",
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its order


class ByTestOrWholeFile(LoadScopeScheduling):
    """xdist's scheduling by scope, a scope being a test, or a file of WHOLE_FILES (xdist's own
    `--dist loadgroup` no longer groups on pytest 9.2: pytest-dev/pytest-xdist#1386)."""

    def _split_scope(self, nodeid: str) -> str:
        file = nodeid.split("::", 1)[0]
        return file if Path(file).name in WHOLE_FILES else nodeid


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log) -> ByTestOrWholeFile | None:
    return ByTestOrWholeFile(config, log) if config.getvalue("dist") == "load" else None


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """start_server(mode, *args, root=SOLUTION): a started server; all are killed after the test."""
    servers: list[Server] = []

    def start(mode: str, *args: str, root: Path = SOLUTION) -> Server:
        server = Server(root / f"{mode}_server.py", ["--port", "0", *args], log_dir=tmp_path / "logs")
        servers.append(server)
        return server.start()

    yield start
    survivors = {server.script.name: server.kill() for server in servers}
    assert not any(survivors.values()), f"processes survived SIGKILL: {survivors}"


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=ALL_MODES)
def any_mode(request: pytest.FixtureRequest) -> str:
    """The three basic modes and the optional two."""
    return request.param


@pytest.fixture(params=[m for m in MODES if m != "single"])
def concurrent_mode(request: pytest.FixtureRequest) -> str:
    return request.param


def mutant(folder: Path, file: str, old: str, new: str, optional: bool = False) -> Path:
    """A copy of the reference in folder (the optional part too, if asked), with the one occurrence
    of old in file replaced by new."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in SERVER_FILES + (OPTIONAL_FILES if optional else ()):
        shutil.copy(SOLUTION / name, folder / name)
    text = (folder / file).read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {file}"
    (folder / file).write_text(text.replace(old, new))
    return folder


def marker(prefix: str) -> str:
    """The mark a hostile test submission, which sheds its environment, puts in its processes' command lines:
    one per tag prefix, so that another worker's attack, alive while it is graded, is no leftover of this one."""
    return f"attack-marker-{prefix}"


def leftovers(prefix: str, settle: float = 3.0) -> list[str]:
    """Live processes of the servers that gradings started with CONCURRENCY_LAB_TAG_PREFIX=prefix, or
    carrying marker(prefix) in their command line; waits up to settle seconds for processes that are being
    killed to go."""
    deadline = time.monotonic() + settle
    while True:
        alive = []
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                marked = marker(prefix) in " ".join(proc.info["cmdline"] or [])
                if marked or proc.environ().get(TAG, "").startswith(prefix):
                    alive.append(f"{proc.pid} {proc.info['cmdline']}")
            except psutil.Error:
                continue
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


@pytest.fixture(scope="module")
def lesson(tmp_path_factory) -> Path:
    """A real lesson (results/lesson/{none,io,cpu}/), as the notebook reads it: one mode and one step per
    workload, to keep the kit's tests short."""
    out = tmp_path_factory.mktemp("results") / "lesson"
    command = [sys.executable, "-m", "autograder", "compare", str(SOLUTION), "--preset", "lesson", "--out", str(out)]
    command += ["--modes", "single", "--steps", "2", "--step-time", "2s", "--repeat", "1"]
    done = subprocess.run(command, cwd=KIT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / "lesson.png").stat().st_size > 10_000 and (out / "io" / "sweep.json").is_file()
    return out
