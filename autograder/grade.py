"""Grade one submission: check that it can be graded, copy it aside, run the checks, report.

Data flows one way: submission → a private copy → the checks (pytest, with the Grader plugin) →
a table for people and results.json for course platforms.
"""

import contextlib
import errno
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from autograder import ALL_MODES, ASSIGNMENT, KIT, OPTIONAL_FILES, SERVER_FILES, results, sandbox
from autograder.plugin import CHECKS, Grader, Settings
from autograder.results import Result

NOT_GRADABLE, GRADER_FAULT, INTERRUPTED = 2, 3, 130
CHECKS_PER_WORKER = 3  # measured: two or three quick checks take less time and CPU in one process
DIST = "load"  # pytest-xdist hands each worker the next check: every check starts servers of its own


class NotGradable(Exception):
    """The submission cannot be graded at all (the message says why)."""


@dataclass
class Outcome:
    grader: Grader
    exit_code: int


MAX_FILE = 1 << 20  # bytes of one file of a submission
PARSE_MEMORY, PARSE_SECONDS = 1 << 30, 20  # bounds of the child process that parses a submission
PARSER = """
import ast, json, sys
problems, patterns = {}, {}
for path in sys.argv[1:]:
    try:
        tree = ast.parse(open(path, "rb").read(), filename=path)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        line = f" line {exc.lineno}" if getattr(exc, "lineno", None) else ""
        detail = exc.args[0] if exc.args else "too large or too deep to parse"
        problems[path] = f"does not parse ({exc.__class__.__name__}{line}: {detail})"
        continue
    found = set()
    for node in ast.walk(tree):  # a function whose body raises NotImplementedError: a blank still to fill
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Raise) and "NotImplementedError" in ast.dump(inner.exc or inner):
                    found.add(f"unwritten:{node.name}")
                    break
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "target" and isinstance(node.value, ast.Call):
            found.add("target called")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "run":
            if not node.args and not node.keywords:
                found.add("run called")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "send":
            found.add("send called")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in (("os", "fork"), ("multiprocessing", "Process"), ("os", "waitpid")):
                found.add(f"{node.value.id}.{node.attr}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names]
            module = getattr(node, "module", None) or ""
            if "socketserver" in names or module == "socketserver":
                found.add("socketserver")
            if module == "os" and "fork" in names:
                found.add("os.fork")
            if module == "multiprocessing" and "Process" in names:
                found.add("multiprocessing.Process")
    patterns[path] = sorted(found)
print(json.dumps({"problems": problems, "patterns": patterns}))
"""


def _read_regular(path: Path) -> bytes:
    """The bytes of path if it is a regular file of at most MAX_FILE bytes; NotGradable otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotGradable(f"{path.name} is a symbolic link: hand in the file itself") from None
        raise
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise NotGradable(f"{path.name} is not a regular file")
        if info.st_size > MAX_FILE:
            raise NotGradable(f"{path.name} has {info.st_size / 2**20:.1f} MiB: a file may have at most 1 MiB")
        data = file.read(MAX_FILE + 1)
    if len(data) > MAX_FILE:
        raise NotGradable(f"{path.name} has more than 1 MiB: a file may have at most 1 MiB")
    return data


def _parse(folder: Path, names: list[str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """({name: why it does not parse}, {name: the patterns found in it}) for the files in folder, parsed
    in a child process under a memory and a time bound (the grader itself never parses a submission).
    Patterns (a function called where it should be passed as target, run() for start(), os.fork,
    socketserver, multiprocessing.Process, send(), os.waitpid) only choose the words of feedback, never points."""

    def bounded() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (PARSE_MEMORY, PARSE_MEMORY))

    try:
        run = subprocess.run(
            [sys.executable, "-I", "-S", "-c", PARSER, *names],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=PARSE_SECONDS,
            preexec_fn=bounded,
            env={"PATH": os.defpath},
        )
        parsed = json.loads(run.stdout)
        patterns = {
            name: [p for p in found if p in PATTERNS or p.startswith("unwritten:")]
            for name, found in parsed["patterns"].items()
        }
        return {name: str(why) for name, why in parsed["problems"].items()}, patterns
    except (subprocess.TimeoutExpired, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        return {name: "could not be parsed within the bounds of the grader" for name in names}, {}


PATTERNS = ("target called", "run called", "os.fork", "socketserver", "multiprocessing.Process", "send called")
PATTERNS += ("os.waitpid",)
TOOLS = {"multiprocess_server.py": "multiprocessing", "multithread_server.py": "threading"}


def advice(patterns: dict[str, list[str]]) -> list[str]:
    """One line for each server file built on another tool than the one the assignment asks for."""
    lines = []
    for name, tool in TOOLS.items():
        found = patterns.get(name, [])
        if "os.fork" in found:
            lines.append(
                f"{name} calls os.fork(): this assignment asks for multiprocessing, a Process of the context "
                "of --start-method, so that the start method decides how each child starts"
            )
        if "socketserver" in found:
            lines.append(
                f"{name} uses socketserver: this assignment asks for {tool} inside the given accept loop, "
                "so that you write the dispatch yourself"
            )
    return lines


@dataclass
class Intake:
    """What take_in found: the optional modes left out, with the reason, and the patterns of each file."""

    broken: dict[str, str]
    patterns: dict[str, list[str]]


def take_in(submission: Path, copy: Path) -> Intake:
    """Copy the submission's server files into copy, safely: regular files only (no symbolic link,
    device or pipe), each at most 1 MiB, each parsed under bounds before anything else reads it.
    NotGradable if a required file is missing or broken; a broken optional file is left out, and
    returned as {mode: the reason}, so that the optional part gets 0 with it and the rest is graded."""
    if not submission.is_dir():
        raise NotGradable(f"{submission} is not a folder")
    missing = [name for name in SERVER_FILES if not os.path.lexists(submission / name)]
    if missing:
        raise NotGradable(f"missing {', '.join(missing)} in {submission}")
    broken: dict[str, str] = {}
    for name in SERVER_FILES + OPTIONAL_FILES:
        if not os.path.lexists(submission / name):
            continue
        try:
            data = _read_regular(submission / name)
            if name in OPTIONAL_FILES and data == (ASSIGNMENT / name).read_bytes():
                continue  # the skeleton as given: the optional part was not done
            (copy / name).write_bytes(data)
        except NotGradable as exc:
            if name in SERVER_FILES:
                raise
            broken[name] = str(exc)
    taken = sorted(path.name for path in copy.iterdir())
    problems, patterns = _parse(copy, taken)
    for name, problem in problems.items():
        if name in SERVER_FILES:
            raise NotGradable(f"{name} {problem}")
        broken[name] = f"{name} {problem}"
        (copy / name).unlink()
    return Intake({name.removesuffix("_server.py"): reason for name, reason in broken.items()}, patterns)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops grading as Ctrl-C does, so that servers are killed and results.json is written."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_checks(
    submission: Path,
    json_path: Path | None = None,
    modes: tuple[str, ...] = ALL_MODES,
    only: tuple[str, ...] = (),
    public: bool = False,
    verbose: bool = False,
    console: Console | None = None,
    keep_logs: Path | None = None,
    isolation: str = "auto",
    require_isolation: bool = False,
    jobs: int = 4,
    time_limit: float = 120.0,
) -> Outcome:
    """Grade submission; NotGradable if it cannot be, sandbox.IsolationError if isolation is required and
    cannot be had. results.json is written once, when grading ends (never while a server runs)."""
    console = console or Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="concurrency-lab-") as tmp:
        os.chmod(tmp, 0o711)  # a runner uid may pass through to its own folder, and list nothing
        copy = Path(tmp) / "submission"  # only the server files: nothing else of the submission is ever read
        copy.mkdir(mode=0o700)
        intake = take_in(submission, copy)
        private = [KIT, submission.resolve(), Path.cwd(), Path(tmp) / "logs"]
        private += [json_path.resolve().parent] if json_path else []
        chosen = sandbox.detect(private) if isolation == "auto" else sandbox.TURNED_OFF
        if require_isolation and not chosen.isolated:
            raise sandbox.IsolationError(chosen.warning)
        progress = Progress(
            TextColumn("grading"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=console,
            transient=True,
            disable=verbose,
        )
        task = progress.add_task("", total=None)

        def advance(result: Result) -> None:
            progress.update(task, advance=1, total=grader.selected, description=f"{result.name}: {result.status}")

        settings = Settings(
            str(copy), str(Path(tmp) / "logs"), list(modes), list(only), not public, time_limit,
            isolation=asdict(chosen), broken=intake.broken, patterns=intake.patterns,
        )  # fmt: skip
        grader = Grader(settings, on_result=advance)
        grader.advice = advice(intake.patterns)
        args = _pytest_args(Path(tmp))
        args += ["-v"] if verbose else ["-p", "no:terminal"]
        # a worker costs about half a second of CPU to start: side by side only with three checks or more for each
        jobs = min(jobs, len(collect(settings, strict=False)) // CHECKS_PER_WORKER) if jobs > 1 else 1
        if jobs > 1:  # checks side by side, in pytest-xdist workers (each check starts servers of its own)
            settings.save(Path(tmp) / "settings.json")
            args += ["-p", "xdist.plugin", "-n", str(jobs), "--dist", DIST]
            args += ["--lab-settings", str(Path(tmp) / "settings.json")]
        with progress, sigterm_interrupts():
            code = pytest.main(args, plugins=[grader])
        if keep_logs is not None:
            shutil.copytree(Path(tmp) / "logs", keep_logs, dirs_exist_ok=True)
    seconds = time.monotonic() - grader.started
    if code == pytest.ExitCode.INTERRUPTED:
        if json_path:
            results.write_gradescope(json_path, grader, seconds, interrupted="Ctrl-C or SIGTERM")
        return Outcome(grader, INTERRUPTED)
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED):
        grader.problems.append(f"pytest stopped with {pytest.ExitCode(code).name}")
    if not grader.results and not grader.problems:
        grader.problems.append("no check matched the selection")
    if json_path:
        results.write_gradescope(json_path, grader, seconds)
    return Outcome(grader, GRADER_FAULT if grader.problems else 0)


def collect(settings: Settings | None = None, strict: bool = True) -> list[Result]:
    """The checks a grading with settings would run (by default every check of the rubric), as the
    Results they would give: collected only, nothing runs. strict: a failure to collect is an error
    (else an empty list: the grading itself then says what went wrong)."""
    with tempfile.TemporaryDirectory(prefix="concurrency-lab-") as tmp:
        grader = Grader(settings or Settings(str(ASSIGNMENT), tmp))  # its files say which modes exist
        args = [*_pytest_args(Path(tmp)), "--collect-only", "-p", "no:terminal"]
        code = pytest.main(args, plugins=[grader])
    if (code != pytest.ExitCode.OK or grader.problems) and not strict:
        return []
    if code != pytest.ExitCode.OK or grader.problems:
        raise RuntimeError(f"could not read the checks: {grader.problems or pytest.ExitCode(code).name}")
    return grader.collected


def rubric() -> str:
    """The rubric as a Markdown table, read from the checks' own marks (the one source of points)."""
    return results.rubric(collect())


def _pytest_args(tmp: Path) -> list[str]:
    """pytest's arguments for the checks: the grader's own settings file, never a submission's, and only
    the plugins the grader uses (not every installed one: anyio's alone costs a worker 0.2 s of CPU)."""
    args = [str(CHECKS), "-c", str(CHECKS / "pytest.ini"), "--rootdir", str(CHECKS), "--disable-plugin-autoload"]
    args += ["-p", "autograder.plugin", "-p", "pytest_timeout"]  # and xdist's, for checks side by side
    return [*args, "--basetemp", str(tmp / "pytest")]
