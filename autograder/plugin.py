"""The pytest plugin that grades: it keeps the checks asked for, and turns each outcome into a Result
with its points and feedback. results.json is written once, by grade.run_checks, when grading ends."""

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from _pytest.outcomes import Failed

from autograder import ALL_MODES, MODES, OPTIONAL_MODES, sandbox
from autograder.harness import Limits, Server
from autograder.rubric import CATEGORIES, HIDDEN_POINTS, Deduction, Result, write_atomically

CHECKS = Path(__file__).with_name("checks")


class Grader:
    """Grades one submission (a folder holding the four files) through the checks in autograder/checks."""

    def __init__(
        self,
        submission: Path,
        log_dir: Path,
        modes: tuple[str, ...] = ALL_MODES,
        only: tuple[str, ...] = (),
        include_hidden: bool = True,
        time_limit: float = 120.0,
        on_result: Callable[[Result], None] | None = None,
    ):
        self.submission, self.log_dir, self.modes, self.only = submission, log_dir, modes, only
        self.include_hidden, self.on_result = include_hidden, on_result
        self.limits = Limits()
        self.isolation = sandbox.TURNED_OFF  # grade.run_checks sets what it found
        self.broken: dict[str, str] = {}  # optional modes whose file could not be taken in: the reason
        self.patterns: dict[str, list[str]] = {}  # {file name: patterns seen in it}, to word feedback
        self.advice: list[str] = []  # one line each: a server built on another tool than the one asked for
        self.start_failures: dict[tuple, str] = {}  # a server that did not start is not started again
        self.deadline = time.monotonic() + time_limit
        self.time_limit = time_limit
        self.started = time.monotonic()
        self.results: list[Result] = []
        self.problems: list[str] = []  # faults of the grader: collection errors, unexpected exceptions
        self.notes: dict[str, str] = {}  # information that is not graded (requests/s under load)
        self.selected = 0
        self.collected: list[Result] = []  # every selected check, before it runs

    # Which checks run ------------------------------------------------------------------------

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        keep = []
        for item in items:
            mark = item.get_closest_marker("check")
            if mark is None:
                self.problems.append(f"{item.nodeid} has no check mark")
                continue
            mode = _param(item, "mode")
            if mode not in self.modes or (mark.kwargs["hidden"] and not self.include_hidden):
                continue
            handed_in = (self.submission / f"{mode}_server.py").is_file() or mode in self.broken
            if mode in OPTIONAL_MODES and not handed_in:
                continue  # the optional part is graded only when it is handed in
            if self.only and not any(word in item.nodeid or word == mark.kwargs["category"] for word in self.only):
                continue
            keep.append(item)
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        order = list(CATEGORIES)

        def place(item: pytest.Item) -> tuple[int, int]:  # the optional part keeps the order of the rest
            return order.index(_describe(item).category), order.index(
                item.get_closest_marker("check").kwargs["category"]
            )

        items[:] = sorted(keep, key=place)
        self.selected = len(keep)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected = [_describe(item) for item in session.items]

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.problems.append(f"could not load the checks: {report.longreprtext}")

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "mode" in metafunc.fixturenames:
            mark = metafunc.definition.get_closest_marker("check")
            modes = mark.kwargs["modes"] if mark and mark.kwargs["modes"] else MODES
            if mark and mark.kwargs["optional"] is not None:
                modes = (*modes, *OPTIONAL_MODES)
            metafunc.parametrize("mode", modes)

    # Outcomes --------------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        item.lab_servers = []  # the servers a check starts, to explain its failure
        mode = _param(item, "mode")
        if mode in self.broken:
            raise Deduction(f"not run: {self.broken[mode]}")
        if time.monotonic() > self.deadline:
            raise Deduction(
                f"not run: grading reached its limit of {self.time_limit:g} s; the checks before this one "
                "waited for the server again and again: does it hang, or ignore signals?"
            )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        outcome = getattr(item, "lab_outcome", None)
        if call.excinfo is not None and outcome is None:
            exc = call.excinfo.value
            if isinstance(exc, Deduction):
                item.lab_outcome = ("failed", str(exc) + _explain(item.lab_servers))
            elif isinstance(exc, ConnectionError | TimeoutError):  # the server broke a connection mid-check
                feedback = f"the server broke the connection ({type(exc).__name__}) in the middle of the check"
                item.lab_outcome = ("failed", feedback + _explain(item.lab_servers))
            elif isinstance(exc, Failed) and "Timeout" in str(exc):
                limit = item.get_closest_marker("timeout")
                seconds = limit.args[0] if limit else item.config.getini("timeout")
                feedback = f"the check did not finish within {seconds} s: the server seems to hang"
                item.lab_outcome = ("failed", feedback + _explain(item.lab_servers))
            else:
                where = f"{call.when} of {item.nodeid}"
                item.lab_outcome = ("error", f"grader fault in {where}: {type(exc).__name__}: {exc}")
        elif call.when == "call" and report.passed and outcome is None:
            item.lab_outcome = ("passed", "")
        if call.when == "teardown" and call.excinfo is not None:
            exc = call.excinfo.value
            if isinstance(exc, Deduction):  # found at teardown, e.g. too much left on disk
                item.lab_outcome = ("failed", str(exc))
            else:  # e.g. processes that survived SIGKILL: never a pass
                item.lab_outcome = ("error", f"grader fault in teardown of {item.nodeid}: {type(exc).__name__}: {exc}")
        if call.when == "teardown":
            self._record(item)
        return report

    def _record(self, item: pytest.Item) -> None:
        status, feedback = getattr(item, "lab_outcome", ("error", "grader fault: the check reported no outcome"))
        result = _describe(item)
        result.points = result.max_points if status == "passed" else 0.0
        result.status, result.feedback = status, feedback or "ok"
        result.seconds = round(time.monotonic() - item.lab_started, 2)
        if status == "error":
            self.problems.append(feedback)
        self.results.append(result)
        number_results(self.results)
        if self.on_result:
            self.on_result(result)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        item.lab_started = time.monotonic()
        return (yield)

    # Totals and results.json -----------------------------------------------------------------

    @property
    def score(self) -> float:
        """The points of the 100 (the optional part is counted apart)."""
        return sum(r.points for r in self.results if r.category != "optional")

    @property
    def max_score(self) -> float:
        return sum(r.max_points for r in self.results if r.category != "optional")

    @property
    def optional(self) -> tuple[float, float]:
        """(earned, possible) points of the optional part."""
        part = [r for r in self.results if r.category == "optional"]
        return sum(r.points for r in part), sum(r.max_points for r in part)

    @property
    def hidden_not_run(self) -> float:
        """Points of the 100 held by hidden checks that this grading did not run (a self-check)."""
        if self.only or any(r.hidden for r in self.results):
            return 0.0
        return HIDDEN_POINTS * len(set(self.modes) & set(MODES)) / len(MODES)

    def write_json(self, path: Path, interrupted: str = "") -> None:
        """Gradescope's results.json, written whole (atomically), once grading has ended."""
        output = f"{self.score:g} / {self.max_score:g} points over {len(self.results)} checks."
        if self.isolation.warning:
            output += f" Warning: {self.isolation.warning}."
        output += "".join(f" Note: {line}." for line in self.advice)
        if self.optional[1]:
            output += f" Optional part, apart from that score: {self.optional[0]:g} / {self.optional[1]:g} points."
        if self.problems:
            output += " The grader had a fault, so this is not a grade: " + "; ".join(self.problems)
        if interrupted:
            output += f" Grading was interrupted ({interrupted}): the checks that did not run are missing."
        results = {
            "score": self.score,
            "execution_time": round(time.monotonic() - self.started, 1),
            "output": output,
            "visibility": "visible",
            "stdout_visibility": "hidden",
            "tests": [
                {
                    "name": r.name,
                    "number": r.number,
                    "score": r.points,
                    "max_score": r.max_points,
                    "status": "passed" if r.status == "passed" else "failed",
                    "output": r.feedback,
                    "visibility": "after_published" if r.hidden else "visible",
                    "tags": [r.category, r.mode, *([r.variant] if r.variant else [])],
                }
                for r in self.results
            ],
            "leaderboard": [],
        }
        write_atomically(path, results)


def _describe(item: pytest.Item) -> Result:
    """The Result an item will give, before it runs: what it checks, and for how many points."""
    mark = item.get_closest_marker("check")
    points, category = mark.kwargs["points"], mark.kwargs["category"]
    if item.callspec.params["mode"] in OPTIONAL_MODES and mark.kwargs["optional"] is not None:
        points, category = mark.kwargs["optional"], "optional"
    if isinstance(points, dict):
        points = next(points[v] for v in item.callspec.params.values() if v in points)
    params = dict(item.callspec.params)
    return Result(
        number="",
        category=category,
        title=(item.function.__doc__ or item.name).strip().splitlines()[0].rstrip("."),
        mode=params.pop("mode"),
        variant=", ".join(str(v) for v in params.values()),
        points=0.0,
        max_points=points,
        status="not run",
        feedback="",
        hidden=mark.kwargs["hidden"],
    )


def _param(item: pytest.Item, name: str) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(name) if callspec else None


def number_results(results: list[Result]) -> None:
    """Numbers like "1.3": the category's place in the rubric, then the check's place within it."""
    order = list(CATEGORIES)
    rows: dict[str, list[str]] = {}
    for result in results:
        checks = rows.setdefault(result.category, [])
        if result.check not in checks:
            checks.append(result.check)
        result.number = f"{order.index(result.category) + 1}.{checks.index(result.check) + 1}"


def _explain(servers: list[Server]) -> str:
    """What the servers of a failed check said or ran into, when it explains the failure."""
    notes = []
    for server in servers:  # a server may log a client's error just after the client saw it: wait a little
        deadline = time.monotonic() + 0.2
        while "Error]" not in server.output_tail() and time.monotonic() < deadline:
            time.sleep(0.02)
        if server.limits and server.task_limit_hit():
            notes.append(
                f"{server.script.name} reached the cap of {server.limits.tasks} processes and threads: "
                "does it start them without end?"
            )
        if server.limits and server.stdout_path.exists() and server.stdout_path.stat().st_size >= server.limits.output:
            notes.append(f"{server.script.name} wrote {server.limits.output >> 20} MiB of output and was stopped")
        errors = [line for line in server.output_tail().splitlines() if "Error]" in line]
        if errors:
            notes.append(f"{server.script.name} logged: {errors[-1]}")
        traceback = server.errors()[-4096:].strip().splitlines()
        if traceback:
            notes.append(f"{server.script.name} printed on stderr: {traceback[-1]}")
    return "".join(f" [{note}]" for note in dict.fromkeys(notes))
