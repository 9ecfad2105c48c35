"""The pytest plugin that grades: it keeps the checks asked for, gives them their fixtures, and turns
pytest's events into Results (results.py holds what is done with them).

Where the checks run, the outcome of each is kept in the item's stash and sent, with its Result, as a
user property of its teardown report; the grading (the same process, or the controller of pytest-xdist
workers when modes are graded side by side) builds its Results from those reports alone. A worker gets
its own Grader from the settings file that the grading wrote (--lab-settings)."""

import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest
from _pytest._io import TerminalWriter

from autograder import ALL_MODES, MODES, OPTIONAL_MODES, SOLUTION, machine, sandbox
from autograder.checks import probes
from autograder.harness import SHARED, Limits, Network, Server, ServerError, network_isolation
from autograder.marks import CATEGORIES, HIDDEN_POINTS, Deduction, GraderStarved, expect
from autograder.results import NOT_WRITTEN, Result, number_results

CHECKS = Path(__file__).with_name("checks")
RESULT = "lab-result"  # the user property that carries a check's Result from where it ran
GRADER = pytest.StashKey["Grader"]()
SERVERS = pytest.StashKey[list[Server]]()  # the servers a check started, to explain its failure
OUTCOME = pytest.StashKey[tuple[str, str]]()  # (status, feedback)
CAUSE = pytest.StashKey[str]()  # the basic mistake that explains a deduction, where one was seen
STARTED = pytest.StashKey[float]()
READY_TIMEOUT = 10.0  # seconds a server may take to print its ready line
FROZEN = 1.0  # seconds late the grader's own timers may fire during a check before its deduction is in doubt
# (half the shortest bound, harness.ANNOUNCE_GRACE: a late grader only lengthens what a server is given)
ATTEMPTS = 3  # tries of a check whose grader did not keep time, before that is a fault of the grading
STALL = 0.5  # seconds a try took from which its deduction may rest on a wait (a quiet start-up takes 0.2 s)


@dataclass
class Settings:
    """What a Grader needs to know, in a form a worker process can read back from a file."""

    submission: str
    log_dir: str
    modes: list[str] = field(default_factory=lambda: list(ALL_MODES))
    only: list[str] = field(default_factory=list)
    include_hidden: bool = True
    time_limit: float = 120.0
    isolation: dict = field(default_factory=lambda: asdict(sandbox.TURNED_OFF))
    broken: dict[str, str] = field(default_factory=dict)  # optional modes whose file could not be taken in
    patterns: dict[str, list[str]] = field(default_factory=dict)  # {file name: patterns}, to word feedback

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: str) -> "Settings":
        return cls(**json.loads(Path(path).read_text()))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--lab-settings", metavar="PATH", help="the grading's settings (written by the grader)")


class QuietTerminal:
    """Where the grading runs pytest without its terminal (-p no:terminal), what pytest-timeout writes its
    stack dump to when a check runs out of time (it asks for the terminal's writer, and fails without one):
    nowhere. The check's result says that it did not finish."""

    def __init__(self) -> None:
        self._tw = TerminalWriter(file=io.StringIO())


def pytest_configure(config: pytest.Config) -> None:
    distributing = getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput")
    if config.pluginmanager.get_plugin("terminalreporter") is None and not distributing:  # where checks run
        config.pluginmanager.register(QuietTerminal(), "terminalreporter")  # (xdist's controller reads a real one)
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: a Grader of its own
        config.pluginmanager.register(Grader(Settings.load(config.getoption("lab_settings"))), "lab-grader")


class Grader:
    """Grades one submission (a folder holding the four files) through the checks in autograder/checks."""

    def __init__(self, settings: Settings, on_result: Callable[[Result], None] | None = None):
        self.settings = settings
        self.submission, self.log_dir = Path(settings.submission), Path(settings.log_dir)
        self.modes, self.only = tuple(settings.modes), tuple(settings.only)
        self.isolation = sandbox.Isolation(**settings.isolation)
        self.broken, self.patterns = settings.broken, settings.patterns
        self.on_result = on_result
        self.limits = Limits()
        self.start_failures: dict[tuple, str] = {}  # a server that did not start is not started again
        self.started = time.monotonic()
        self.waited = 0.0  # seconds spent waiting for servers' ready lines: never counted against the limit
        self.spent: dict[str, float] = {}  # {mode: seconds its checks took here}: each mode has the limit to itself
        self.results: list[Result] = []
        self.problems: list[str] = []  # faults of the grader: collection errors, unexpected exceptions
        self.notes: dict[str, str] = {}  # information that is not graded (requests/s under load)
        self.advice: list[str] = []  # one line each: a server built on another tool than the one asked for
        self.selected = 0
        self.collected: list[Result] = []  # every selected check, before it runs
        self.order: dict[str, int] = {}  # {node id: its place}: results arrive in any order, side by side
        self.numbers: dict[str, str] = {}  # {check: its number in the rubric}, where the checks are collected
        self.causes: dict[str, str] = {}  # {mode: the basic cause seen by probes.diagnose, or ""}

    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[GRADER] = self
        machine.clock()  # from now on, this process knows how late its own timers fire

    def over_time(self, mode: str) -> bool:
        """Whether the mode's checks here have used its time: a server of one mode that hangs costs the
        checks of that mode alone, never another's."""
        return self.spent.get(mode, 0.0) > self.settings.time_limit

    # Which checks run ------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)  # before pytest-xdist names the groups
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        keep = []
        for item in items:
            mark = item.get_closest_marker("check")
            if mark is None:
                raise pytest.UsageError(f"{item.nodeid} has no check mark")
            mode = _param(item, "mode")
            if mode not in self.modes or (mark.kwargs["hidden"] and not self.settings.include_hidden):
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

        rubric = [_describe(item) for item in sorted(items, key=place)]
        number_results(rubric)  # the rubric's numbers, whichever checks this grading runs
        self.numbers = {r.check: r.number for r in rubric}
        items[:] = sorted(keep, key=place)
        self.selected = len(keep)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected = [_describe(item) for item in session.items]
        self.order = {item.nodeid: place for place, item in enumerate(session.items)}

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids: list[str]) -> None:
        self.selected = len(ids)  # every worker collects them all, in the rubric's order
        self.order = {nodeid: place for place, nodeid in enumerate(ids)}

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

    # Outcomes, where the checks run ----------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        item.stash[STARTED], waited = time.monotonic(), self.waited
        item.stash[SERVERS] = []
        try:
            return (yield)
        finally:
            mode = _param(item, "mode")
            took = time.monotonic() - item.stash[STARTED] - (self.waited - waited)
            self.spent[mode] = self.spent.get(mode, 0.0) + took

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool:
        """Run the check; if it deducts points while the grader's own timers fired late (the grader was
        starved of CPU, or stopped: what it timed is then in doubt), run it again with new servers, up to
        ATTEMPTS times; then the grading machine was too busy, which is a fault of the grading. A deduction
        the grader timed counts once a second try, with new servers, sees it too (a server the machine
        stalled for a moment is no mistake of the submission), where the check has the time for one."""
        args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
        seen_once = False
        for _ in range(ATTEMPTS):
            began, failures = time.monotonic(), dict(self.start_failures)
            try:
                pyfuncitem.obj(**args)
                return True
            except Deduction as exc:
                late = machine.clock().worst_lateness(began)
                took = time.monotonic() - began
                if late > FROZEN:
                    doubt = f"{exc} (while the grader's own timers fired up to {late:.1f} s late)"
                elif not seen_once and self._time_for_another(pyfuncitem, took):
                    seen_once, doubt = True, str(exc)  # once more, with new servers, before it counts
                else:
                    if not exc.cause and "serve" in args and not NOT_WRITTEN.search(str(exc)):
                        exc.cause = self.diagnosis(args["serve"], pyfuncitem.callspec.params["mode"])
                    pyfuncitem.stash[CAUSE] = exc.cause
                    raise
            for server in pyfuncitem.stash.get(SERVERS, []):  # the next try starts its own
                server.kill()
            self.start_failures = failures  # a server that did not start in time may start now
        raise GraderStarved(f"the grading machine was too busy to judge this check in {ATTEMPTS} tries: {doubt}")

    def _time_for_another(self, item: pytest.Function, took: float) -> bool:
        """Whether a check that deducted after took seconds may be tried once more: it has the time left
        (its own limit, its mode's), and it is not the load check, which judges the machine itself."""
        mark = item.get_closest_marker("check")
        spent = time.monotonic() - item.stash[STARTED]
        in_time = spent + took + 5 < _time_limit(item) and not self.over_time(_param(item, "mode"))
        waited = took >= STALL  # one reached at once rests on what the servers said, which no stall changes
        return mark.kwargs["category"] != "load" and waited and in_time

    def diagnosis(self, serve, mode: str) -> str:
        """probes.diagnose of the mode, seen once: a fresh server of the mode gives the same answer each time."""
        if mode not in self.causes:
            self.causes[mode] = probes.diagnose(serve, mode, self.patterns)
        return self.causes[mode]

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        mode = _param(item, "mode")
        if mode in self.broken:
            raise Deduction(f"not run: {self.broken[mode]}")
        if self.over_time(mode):
            raise Deduction(
                f"not run: the grading of this mode reached its limit of {self.settings.time_limit:g} s (the time "
                "servers took to start not counted); the checks before this one waited for the server again and "
                "again: does it hang, or ignore signals?"
            )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        if call.excinfo is not None and OUTCOME not in item.stash:
            item.stash[OUTCOME] = self._classify(item, call)
        elif call.when == "call" and report.passed and OUTCOME not in item.stash:
            item.stash[OUTCOME] = ("passed", "")
        if call.when == "teardown" and call.excinfo is not None:
            exc = call.excinfo.value
            if isinstance(exc, Deduction):  # found at teardown, e.g. too much left on disk
                item.stash[OUTCOME] = ("failed", str(exc))
            else:  # e.g. processes that survived SIGKILL: never a pass
                item.stash[OUTCOME] = (
                    "error",
                    f"grader fault in teardown of {item.nodeid}: {type(exc).__name__}: {exc}",
                )
        if call.when == "teardown":
            report.user_properties.append((RESULT, self._result(item)))
        return report

    def _classify(self, item: pytest.Item, call: pytest.CallInfo) -> tuple[str, str]:
        """(status, feedback) of a check that raised."""
        exc = call.excinfo.value
        servers = item.stash.get(SERVERS, [])
        if isinstance(exc, Deduction):
            return "failed", str(exc) + _explain(servers)
        if isinstance(exc, GraderStarved):
            return "error", f"grader fault in {item.nodeid}: {exc}"
        if isinstance(exc, ConnectionError | TimeoutError):  # the server broke a connection mid-check
            feedback = f"the server broke the connection ({type(exc).__name__}) in the middle of the check"
            return "failed", feedback + _explain(servers)
        if isinstance(exc, pytest.fail.Exception) and "from pytest-timeout" in str(exc):  # its time is up
            seconds = _time_limit(item)
            return "failed", f"the check did not finish within {seconds:g} s: the server seems to hang" + _explain(
                servers
            )
        entry = call.excinfo.traceback[-1]  # where it was raised: a fault's report must be enough to find it
        where = f"{Path(str(entry.path)).name}:{entry.lineno + 1} in {entry.name}"
        return "error", f"grader fault in {call.when} of {item.nodeid}: {type(exc).__name__}: {exc} (at {where})"

    def _result(self, item: pytest.Item) -> dict:
        status, feedback = item.stash.get(OUTCOME, ("error", "grader fault: the check reported no outcome"))
        result = _describe(item)
        result.points = result.max_points if status == "passed" else 0.0
        result.status, result.feedback = status, feedback or "ok"
        result.cause = item.stash.get(CAUSE, "") if status == "failed" else ""
        result.seconds = round(time.monotonic() - item.stash[STARTED], 2)
        result.notes, self.notes = dict(self.notes), {}
        result.node = item.nodeid
        result.number = self.numbers.get(result.check, "")
        return asdict(result)

    # Results, where the grading is -------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        found = [value for name, value in report.user_properties if name == RESULT]
        if report.when != "teardown" or not found:
            return
        result = Result(**found[-1])
        if result.status == "error":
            self.problems.append(result.feedback)
        self.notes.update(result.notes)
        self.results.append(result)
        self.results.sort(key=lambda r: self.order.get(r.node, len(self.order)))
        if not all(r.number for r in self.results):
            number_results(self.results)
        if self.on_result:
            self.on_result(result)

    @property
    def hidden_not_run(self) -> float:
        """Points of the 100 held by hidden checks that this grading did not run (a self-check)."""
        if self.only or any(r.hidden for r in self.results):
            return 0.0
        return HIDDEN_POINTS * len(set(self.modes) & set(MODES)) / len(MODES)


@pytest.fixture(scope="session")
def grading(pytestconfig: pytest.Config) -> "Grader":
    """The Grader of this process."""
    return pytestconfig.stash[GRADER]


Serve = Callable[..., Server]


@pytest.fixture
def serve(grading: Grader, request: pytest.FixtureRequest) -> Iterator[Serve]:
    """serve(mode, *args): a server of the submission, listening on 127.0.0.1, port 0; killed afterwards."""
    servers = request.node.stash.setdefault(SERVERS, [])
    # the check's servers share a network of their own (a server restarted on the same port meets the first
    # one's TIME_WAIT); where none can be made here (not root, a container), the machine's loopback
    box = Network.make() if grading.isolation.level != "none" and not network_isolation() else None
    reference_box = None  # the kit's reference, loaded beside the submission's server: out of its reach

    def start(mode: str, *args: str, reference: bool = False) -> Server:
        """reference: the kit's own server of the mode, in the same conditions (a baseline, never graded), in
        a network of its own where the check's has one: a submission's server can see the listening sockets
        of its network, and once held the reference's connections until it failed."""
        nonlocal reference_box
        if reference and box is not None and reference_box is None:
            reference_box = Network.make()
        key = (mode, args)
        if key in grading.start_failures and not reference:
            raise Deduction(grading.start_failures[key])
        script = (SOLUTION if reference else grading.submission) / f"{mode}_server.py"
        server = Server(
            script,
            ["--port", "0", *args],
            grading.log_dir,
            limits=grading.limits,
            isolation=grading.isolation,
            network=(reference_box if reference else box) or SHARED,
        )
        servers.append(server)
        began = time.monotonic()
        try:
            return server.start(ready_timeout=READY_TIMEOUT)
        except ServerError as exc:
            if reference:
                raise RuntimeError(f"the kit's reference {mode}_server.py did not start here: it {exc}") from None
            feedback = f"{mode}_server.py {' '.join(args)} did not start: it {exc}".replace("  ", " ")
            grading.start_failures[key] = feedback
            raise Deduction(feedback) from None
        finally:
            grading.waited += time.monotonic() - began

    yield start
    left = {server.script.name: server.kill() for server in servers}
    if any(left.values()):
        raise RuntimeError(f"processes that survived SIGKILL: {left}")
    for network in (box, reference_box):
        if network is not None:
            network.close()
    for server in servers:  # a sandbox's tmpfs caps the disk; a runner uid's own folder is measured here
        expect(
            server.disk_used <= grading.limits.disk,
            f"{server.script.name} left {server.disk_used >> 20} MiB in its folder: "
            f"at most {grading.limits.disk >> 20} MiB may be written",
        )


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


def _time_limit(item: pytest.Item) -> float:
    """The seconds pytest-timeout gives the check: its own mark, else the checks' pytest.ini."""
    limit = item.get_closest_marker("timeout")
    return float(limit.args[0] if limit else item.config.getini("timeout"))


def _explain(servers: list[Server]) -> str:
    """What the servers of a failed check said or ran into, when it explains the failure."""
    notes = []
    for server in servers:  # a server may log a client's error just after the client saw it: wait a little
        if server.script.is_relative_to(SOLUTION):  # the kit's reference, run beside as a baseline: not theirs
            continue
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
        traceback = server.errors_tail(4096).strip().splitlines()
        if traceback:
            notes.append(f"{server.script.name} printed on stderr: {traceback[-1]}")
    return "".join(f" [{note}]" for note in dict.fromkeys(notes))
