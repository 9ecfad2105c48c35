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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from autograder import ALL_MODES, ASSIGNMENT, KIT, OPTIONAL_FILES, OPTIONAL_MODES, SERVER_FILES, sandbox
from autograder.plugin import CHECKS, Grader, number_results
from autograder.rubric import CATEGORIES, Result, write_atomically

NOT_GRADABLE, GRADER_FAULT, INTERRUPTED = 2, 3, 130


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
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "target" and isinstance(node.value, ast.Call):
            found.add("target called")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "run":
            if not node.args and not node.keywords:
                found.add("run called")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in (("os", "fork"), ("multiprocessing", "Process")):
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
    socketserver, multiprocessing.Process) only choose the words of feedback, never points."""

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
        patterns = {name: [p for p in found if p in PATTERNS] for name, found in parsed["patterns"].items()}
        return {name: str(why) for name, why in parsed["problems"].items()}, patterns
    except (subprocess.TimeoutExpired, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        return {name: "could not be parsed within the bounds of the grader" for name in names}, {}


PATTERNS = ("target called", "run called", "os.fork", "socketserver", "multiprocessing.Process")
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

        grader = Grader(copy, Path(tmp) / "logs", modes, only, not public, on_result=advance)
        grader.isolation, grader.broken, grader.patterns = chosen, intake.broken, intake.patterns
        grader.advice = advice(intake.patterns)
        args = [str(CHECKS), "-c", str(CHECKS / "pytest.ini"), "--rootdir", str(CHECKS)]
        args += ["--basetemp", str(Path(tmp) / "pytest")]
        args += ["-v"] if verbose else ["-p", "no:terminal"]
        with progress, sigterm_interrupts():
            code = pytest.main(args, plugins=[grader])
        if keep_logs is not None:
            shutil.copytree(Path(tmp) / "logs", keep_logs, dirs_exist_ok=True)
    if code == pytest.ExitCode.INTERRUPTED:
        if json_path:
            grader.write_json(json_path, interrupted="Ctrl-C or SIGTERM")
        return Outcome(grader, INTERRUPTED)
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED):
        grader.problems.append(f"pytest stopped with {pytest.ExitCode(code).name}")
    if not grader.results and not grader.problems:
        grader.problems.append("no check matched the selection")
    if json_path:
        grader.write_json(json_path)
    return Outcome(grader, GRADER_FAULT if grader.problems else 0)


def write_not_gradable(json_path: Path, reason: str) -> None:
    """results.json for a submission that cannot be graded: 0, and why (course platforms show it)."""
    results = {"score": 0, "output": f"not gradable: {reason}", "tests": [], "visibility": "visible"}
    write_atomically(json_path, results)


def tables(grader: Grader) -> list[Table | str]:
    """The results for people, at 80 columns: the 100 points, a row per check under its category, a
    column per mode; then the optional part, as a table of its own when it was handed in, else one line."""
    basic = [r for r in grader.results if r.category != "optional"]
    title = f"Concurrency Lab: {grader.score:g} / {grader.max_score:g} points"
    if grader.hidden_not_run:
        title += f" (and {grader.hidden_not_run:g} in hidden checks)"
    shown: list[Table | str] = [_table(title, basic, by_category=True)]
    optional = [r for r in grader.results if r.category == "optional"]
    if optional:
        earned, possible = grader.optional
        shown.append(_table(f"Optional part, beside the 100: {earned:g} / {possible:g} points", optional))
    elif not any(mode in grader.broken for mode in OPTIONAL_MODES) and set(OPTIONAL_MODES) & set(grader.modes):
        shown.append("optional part: not handed in")
    return shown


def _table(title: str, results: list[Result], by_category: bool = False) -> Table:
    modes = [m for m in ALL_MODES if any(r.mode == m for r in results)]
    view = Table(title=title, title_justify="left")
    view.add_column("#", justify="right", style="dim", no_wrap=True)
    view.add_column("check", ratio=1)
    for mode in modes:
        view.add_column(mode, justify="right", no_wrap=True)
    rows: dict[tuple[str, str, str], dict[str, Result]] = {}
    for r in results:
        title_cell = r.title + (f" [{r.variant}]" if r.variant else "")
        rows.setdefault((r.category, r.number, title_cell), {})[r.mode] = r
    category = ""
    for (row_category, number, title_cell), by_mode in rows.items():
        if by_category and row_category != category:
            category = row_category
            view.add_row("", f"[bold]{CATEGORIES[category]}[/]", *[""] * len(modes))
        view.add_row(number, escape(title_cell), *[_cell(by_mode.get(mode)) for mode in modes])
    view.add_section()
    totals = [sum(r.points for r in results if r.mode == m) for m in modes]
    view.add_row("", "[bold]points per mode[/]", *[f"[bold]{t:g}[/]" for t in totals])
    return view


def _cell(result: Result | None) -> str:
    if result is None:
        return ""
    style = {"passed": "green", "failed": "red", "error": "magenta"}[result.status]
    return f"[{style}]{result.points:g}/{result.max_points:g}[/]"


def feedback(grader: Grader) -> list[str]:
    """One line per check that lost points: where, and what to look at."""
    return [f"{r.number} {r.name}: {r.feedback}" for r in grader.results if r.status != "passed"]


def rubric() -> str:
    """The rubric as a Markdown table, read from the checks' own marks (the one source of points)."""
    with tempfile.TemporaryDirectory(prefix="concurrency-lab-") as tmp:
        grader = Grader(ASSIGNMENT, Path(tmp))  # only collected: its files say which modes exist
        args = [str(CHECKS), "-c", str(CHECKS / "pytest.ini"), "--rootdir", str(CHECKS), "--collect-only"]
        code = pytest.main([*args, "-p", "no:terminal", "--basetemp", str(Path(tmp) / "pytest")], plugins=[grader])
    if code != pytest.ExitCode.OK or grader.problems:
        raise RuntimeError(f"could not read the checks: {grader.problems or pytest.ExitCode(code).name}")
    number_results(grader.collected)
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for r in grader.collected:
        rows.setdefault((r.number, r.check + (" (hidden: official grading only)" if r.hidden else "")), {})[r.mode] = (
            r.max_points
        )
    modes = [m for m in ALL_MODES if any(r.mode == m for r in grader.collected)]
    lines = ["| # | check | " + " | ".join(modes) + " | points |", "| --- | --- |" + " ---: |" * (len(modes) + 1)]
    for (number, check), points in rows.items():
        cells = [f"{points[m]:g}" if m in points else "" for m in modes]
        lines.append(f"| {number} | {check} | {' | '.join(cells)} | {sum(points.values()):g} |")
    blank = " |" * len(modes)
    totals = _category_totals(grader.collected)
    for category, (_, possible) in totals.items():
        if category != "optional":
            lines.append(f"| | **{CATEGORIES[category]}** |{blank} **{possible:g}** |")
    total = sum(possible for category, (_, possible) in totals.items() if category != "optional")
    lines.append(f"| | **total** |{blank} **{total:g}** |")
    if "optional" in totals:
        lines.append(f"| | **optional part, beside the total** |{blank} **{totals['optional'][1]:g}** |")
    return "\n".join(lines) + "\n"


def _category_totals(results: list[Result]) -> dict[str, tuple[float, float]]:
    """(earned, possible) points per category, in the rubric's order."""
    totals = {c: (0.0, 0.0) for c in CATEGORIES}
    for r in results:
        earned, possible = totals[r.category]
        totals[r.category] = (earned + r.points, possible + r.max_points)
    return {c: t for c, t in totals.items() if t[1]}
