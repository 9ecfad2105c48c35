"""Grade one submission: check that it can be graded, copy it aside, run the checks, report.

Data flows one way: submission → a private copy → the checks (pytest, with the Grader plugin) →
a table for people and results.json for course platforms.
"""

import ast
import contextlib
import shutil
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from autograder import ALL_MODES, ASSIGNMENT, OPTIONAL_FILES, SERVER_FILES
from autograder.plugin import CHECKS, Grader, number_results
from autograder.rubric import CATEGORIES, Result

NOT_GRADABLE, GRADER_FAULT, INTERRUPTED = 2, 3, 130


class NotGradable(Exception):
    """The submission cannot be graded at all (the message says why)."""


@dataclass
class Outcome:
    grader: Grader
    exit_code: int


def validate(submission: Path) -> None:
    """Raise NotGradable unless submission is a folder with the four files, each valid Python."""
    if not submission.is_dir():
        raise NotGradable(f"{submission} is not a folder")
    missing = [name for name in SERVER_FILES if not (submission / name).is_file()]
    if missing:
        raise NotGradable(f"missing {', '.join(missing)} in {submission}")
    for name in [name for name in SERVER_FILES + OPTIONAL_FILES if (submission / name).is_file()]:
        try:
            ast.parse((submission / name).read_bytes(), filename=name)
        except (SyntaxError, ValueError) as exc:
            line = f" line {exc.lineno}" if getattr(exc, "lineno", None) else ""
            raise NotGradable(f"{name} does not parse ({exc.__class__.__name__}{line}: {exc.args[0]})") from None


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
) -> Outcome:
    """Grade submission; NotGradable if it cannot be."""
    validate(submission)
    console = console or Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="concurrency-lab-") as tmp:
        copy = Path(tmp) / "submission"  # only the four files: nothing else of the submission is ever read
        copy.mkdir()
        for name in SERVER_FILES + OPTIONAL_FILES:
            if (submission / name).is_file():
                shutil.copyfile(submission / name, copy / name)
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

        grader = Grader(copy, Path(tmp) / "logs", modes, only, not public, json_path=json_path, on_result=advance)
        args = [str(CHECKS), "-c", str(CHECKS / "pytest.ini"), "--rootdir", str(CHECKS)]
        args += ["--basetemp", str(Path(tmp) / "pytest")]
        args += ["-v"] if verbose else ["-p", "no:terminal"]
        with progress, sigterm_interrupts():
            code = pytest.main(args, plugins=[grader])
        if keep_logs is not None:
            shutil.copytree(Path(tmp) / "logs", keep_logs, dirs_exist_ok=True)
    if code == pytest.ExitCode.INTERRUPTED:
        grader.write_json(interrupted="Ctrl-C or SIGTERM")
        return Outcome(grader, INTERRUPTED)
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED):
        grader.problems.append(f"pytest stopped with {pytest.ExitCode(code).name}")
    if not grader.results and not grader.problems:
        grader.problems.append("no check matched the selection")
    grader.write_json()
    return Outcome(grader, GRADER_FAULT if grader.problems else 0)


def table(grader: Grader) -> Table:
    """The results for people: a row per check, a column per mode, then the totals."""
    modes = [m for m in ALL_MODES if any(r.mode == m for r in grader.results)]
    title = f"Concurrency Lab: {grader.score:g} / {grader.max_score:g} points"
    if grader.optional[1]:
        title += f" (optional part: {grader.optional[0]:g} / {grader.optional[1]:g})"
    view = Table(title=title)
    view.add_column("#", justify="right", style="dim")
    view.add_column("check", overflow="fold")
    for mode in modes:
        view.add_column(mode, justify="right")
    rows: dict[tuple[str, str], dict[str, Result]] = {}
    for r in grader.results:
        rows.setdefault((r.number, r.check), {})[r.mode] = r
    for (number, check), by_mode in rows.items():
        cells = [_cell(by_mode.get(mode)) for mode in modes]
        view.add_row(number, check, *cells)
    view.add_section()
    totals = [sum(r.points for r in grader.results if r.mode == m) for m in modes]
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
        rows.setdefault((r.number, r.check), {})[r.mode] = r.max_points
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
