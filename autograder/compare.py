"""`python -m autograder compare`: the report's experiment, measured honestly.

Each mode's server is started in turn (a subprocess on 127.0.0.1), the kit's locustfile is run
against it headless with the same settings (locust as a subprocess, never imported here), and the
exact final figures come from the locustfile's summary (locust's CSV misses the end of short runs).
Figures cover the steady window only (`--reset-stats` drops the ramp-up); the CPU of locust and of
the server is sampled over that same window. Every row then says what bounded it (`judge`): the
users' own wait (a closed loop cannot go past N / (R + Z)), the load generator, the machine's cores,
the server's CPU, the server itself, or failures.

The machine is shared: the whole machine's CPU (steal included, where the kernel reports it) is sampled
over the same window, and a row where other processes took more than MACHINE_BUSY of the CPUs is
labelled `machine busy`, beside what bounded it. Before a run, a short look says whether the machine is
quiet (`--require-quiet` refuses to measure when it is not). `--repeat N` runs each row N times: the row
holds the medians and the spread. The interpreter that runs the servers (its version, whether the GIL is
enabled) is part of the result, and the rules use it. `--timeline` draws each server at work under one
burst of clients, from the servers' own record of each client (`--timeline FILE` of the provided code).
`sweep.py` steps the load up to find each mode's capacity.
"""

import csv
import json
import math
import multiprocessing
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import psutil

from autograder import KIT, machine
from autograder.harness import Server, ServerError

PRESETS = {
    # users, spawn rate, run time (s), wait between requests of a user (s): min, max
    "quick": {"users": 100, "spawn_rate": 100, "run_time": 20, "min_wait": 0.05, "max_wait": 0.1},
    "report": {"users": 10000, "spawn_rate": 1000, "run_time": 60, "min_wait": 1.0, "max_wait": 5.0},
}
SATURATED = 0.9  # a locust process busier than this (share of one core) measures itself
LOCUST_BUSY = 0.75  # ... and so does one this busy beside a server idle half the time or more
BUSY = 0.85  # a share of the CPU available above which that CPU is what bounds the figure
FAILED = 0.01  # a share of failed requests above which the failures decide the figure
WAIT_BOUND = 0.8  # throughput at this share of the closed loop's ceiling N / Z: the users' wait decides it
SAMPLE_EVERY = 0.2  # seconds between two samples of the CPU used by the server and by locust
MACHINE_BUSY = 0.25  # other processes took more than this share of the CPUs: the row is labelled machine busy
QUIET_LOOK = 1.0  # seconds of the look at the machine before a run

# What bounded a row, from what was measured in it (see judge()).
LOCUST, FAILURES, WAIT, CORES, SERVER_CPU, SERVER = (
    "locust", "failures", "users' wait", "cores", "server CPU", "server",
)  # fmt: skip

COLUMNS = [
    "Server", "Type", "Name", "# Requests", "# Fails", "Median", "90%ile", "Average", "Min", "Max",
    "Average size", "RPS", "Failures/s", "Locust CPU", "Server CPU", "CPU ms/req", "Bound by", "Other CPU",
    "Runs", "RPS min", "RPS max",
]  # fmt: skip


def cores() -> float:
    """The CPUs this process (and so locust and the servers it starts) may use: its affinity, capped by
    its control group's CPU quota (machine.cpus())."""
    found = machine.cpus()
    return int(found) if found == int(found) else found


def gil_enabled() -> bool:
    """Whether the GIL is enabled in this process (always, before Python 3.13)."""
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return True if is_enabled is None else bool(is_enabled())


INTERPRETER = (
    "import platform, sys, sysconfig; enabled = getattr(sys, '_is_gil_enabled', None); "
    "print(platform.python_implementation(), platform.python_version(), "
    "int(bool(sysconfig.get_config_var('Py_GIL_DISABLED'))), int(enabled() if enabled else 1))"
)


def interpreter() -> tuple[str, bool]:
    """(name and version, GIL enabled) of the interpreter that runs the servers: this one's executable,
    with this environment (PYTHON_GIL included), importing no extension module, as a server does. In this
    process the answer could differ: an extension module that is not free-threaded turns the GIL back on."""
    try:
        done = subprocess.run([sys.executable, "-c", INTERPRETER], capture_output=True, text=True, timeout=30)
        name, version, free, enabled = done.stdout.split()
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return f"{platform.python_implementation()} {platform.python_version()}", gil_enabled()
    return f"{name} {version}" + (" (free-threaded build)" if free == "1" else ""), enabled == "1"


def default_start_method() -> str:
    """The start method a multiprocessing server gets when it chooses none: fork on Linux (before
    Python 3.14), spawn on macOS and Windows."""
    return multiprocessing.get_all_start_methods()[0]


@dataclass
class Settings:
    users: int
    spawn_rate: float
    run_time: float
    min_wait: float
    max_wait: float
    processes: int = 1
    request_timeout: float = 10.0
    work_ms: float = 0.0
    work_kind: str = "io"
    start_method: str = field(default_factory=default_start_method)
    cores: float = field(default_factory=cores)
    open_files: int = field(default_factory=lambda: resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    python: str = field(default_factory=lambda: f"{platform.python_implementation()} {platform.python_version()}")
    gil: bool = field(default_factory=gil_enabled)  # of the interpreter that runs the servers (interpreter())

    @property
    def mean_wait(self) -> float:
        return (self.min_wait + self.max_wait) / 2

    @property
    def ceiling(self) -> float | None:
        """The most a closed loop of N users that wait Z s between requests can ask for: N / Z
        requests/s, reached only if the server answered in no time (Little's law: N = X (R + Z))."""
        return self.users / self.mean_wait if self.mean_wait > 0 else None

    @property
    def workload(self) -> str:
        return f"{self.work_ms:g} ms {self.work_kind}" if self.work_ms else "none"

    @property
    def interpreter(self) -> str:
        gil = "GIL enabled" if self.gil else "GIL disabled: threads run Python code on several cores at once"
        return f"{self.python}, {gil}"

    def one_core_at_a_time(self, mode: str) -> bool:
        """Whether the mode's server runs its Python code on one core at a time: one thread (single, eventloop),
        or threads taking turns under the GIL; processes never, nor threads on a build without the GIL."""
        return mode in ("single", "eventloop") or (mode != "multiprocess" and self.gil)

    def lines(self) -> list[str]:
        """What decides whether the figures can be trusted, as printed under the table."""
        ceiling = f"{self.ceiling:.0f} requests/s" if self.ceiling else "none (no wait: users ask again at once)"
        return [
            f"users: {self.users}, spawned at {self.spawn_rate:g}/s; run time {self.run_time:g} s, the figures "
            "cover the steady window only (--reset-stats)",
            f"wait between two requests of a user: {self.min_wait:g}-{self.max_wait:g} s; closed-loop "
            f"ceiling N / Z: {ceiling}",
            f"client timeout: {self.request_timeout:g} s (a request that takes longer is a failure)",
            f"work per request: {self.workload}; multiprocess start method: {self.start_method}",
            f"open-file limit (ulimit -n): {self.open_files}; cores: {self.cores:g}; "
            f"locust processes: {self.processes}",
            f"interpreter of the servers: {self.interpreter}",
        ]


@dataclass
class Row:
    mode: str
    summary: dict
    locust_cpu: float  # share of one core, per locust process, over the steady window
    server_cpu: float  # share of one core (over 1 when it used several), over the steady window
    seconds: float  # the steady window
    server_cpu_ms: float = 0.0  # server CPU time per request: what a client costs the server
    bound: str = ""  # what bounded the figures: one of the labels above (LOCUST ... SERVER)
    why: str = ""  # ... and the measurements that say so
    others_cpu: float = 0.0  # CPUs that other processes took over the window (steal included); median of the runs
    steal_cpu: float | None = None  # ... of which the hypervisor's steal, where the kernel reports it
    cpus: int = 0  # the CPUs sampled (this process's affinity); 0: the machine was not sampled
    busy_runs: int = 0  # runs in which other processes took more than MACHINE_BUSY of the CPUs
    others_max: float = 0.0  # the most that other processes took in a run
    repeats: int = 1  # runs of which this row holds the medians
    spread: dict = field(default_factory=dict)  # {"rps": [min, max], "median_ms": ..., "p90_ms": ...} over the runs
    runs: list = field(default_factory=list)  # each run's own figures

    @classmethod
    def measured(cls, mode: str, summary: dict, locust_cpu: float, server_cpu: float, seconds: float,
                 settings: Settings, others_cpu: float = 0.0, steal_cpu: float | None = None,
                 cpus: int = 0) -> "Row":  # fmt: skip
        rps = summary["rps"]
        cpu_ms = server_cpu / rps * 1000 if rps else 0.0
        busy = int(cpus > 0 and others_cpu > MACHINE_BUSY * cpus)
        row = cls(mode, summary, locust_cpu, server_cpu, seconds, cpu_ms, others_cpu=others_cpu,
                  steal_cpu=steal_cpu, cpus=cpus, busy_runs=busy, others_max=others_cpu)  # fmt: skip
        row.bound, row.why = judge(row, settings)
        row.spread = {key: [summary[key], summary[key]] for key in SPREAD}
        row.runs = [row.brief()]
        return row

    def brief(self) -> dict:
        """This run's own figures, as a row of several runs keeps them."""
        figures = {key: self.summary[key] for key in ("requests", "failures", *SPREAD)}
        return figures | {"locust_cpu": self.locust_cpu, "server_cpu": self.server_cpu, "others_cpu": self.others_cpu,
                          "seconds": self.seconds, "bound": self.bound}  # fmt: skip

    @property
    def saturated(self) -> bool:
        return self.locust_cpu > SATURATED

    @property
    def machine_busy(self) -> bool:
        return self.busy_runs > 0

    @property
    def machine(self) -> str:
        """ "machine busy: ..." where other processes took more than MACHINE_BUSY of the CPUs, else ""."""
        if not self.machine_busy:
            return ""
        runs = f" in {self.busy_runs} of {self.repeats} runs" if self.repeats > 1 else ""
        most = "up to " if self.repeats > 1 else ""
        steal = f", {self.steal_cpu:.2f} of them stolen by the hypervisor" if self.steal_cpu else ""
        return (
            f"machine busy{runs}: other processes took {most}{self.others_max:.2f} of the {self.cpus} CPUs "
            f"({self.others_max / self.cpus:.0%}{steal}): these figures are theirs as much as the server's"
        )

    @property
    def label(self) -> str:
        """What bounded the row, and "machine busy" beside it where that holds too."""
        return self.bound + (f", machine busy ({self.others_max / self.cpus:.0%})" if self.machine_busy else "")

    @property
    def notes(self) -> list[str]:
        """What a reader must know to trust this row."""
        notes = [f"bound by {self.bound}: {self.why}"]
        if self.machine_busy:
            notes.append(self.machine)
        if self.repeats > 1:
            low, high = self.spread["rps"]
            notes.append(
                f"{self.repeats} runs: median {self.summary['rps']:.1f} requests/s, from {low:.1f} to {high:.1f}"
            )
        if self.summary["failures"] and self.bound != FAILURES:
            notes.append(f"{self.summary['failures']} failures: {errors(self.summary)}")
        return notes

    def cells(self) -> list[str]:
        s = self.summary
        return [
            self.mode, "GET", "/", str(s["requests"]), str(s["failures"]), f"{s['median_ms']:.0f}",
            f"{s['p90_ms']:.0f}", f"{s['average_ms']:.0f}", f"{s['min_ms']:.0f}", f"{s['max_ms']:.0f}",
            f"{s['average_size']:.0f}", f"{s['rps']:.1f}", f"{s['failures_per_s']:.2f}",
            f"{self.locust_cpu:.0%}" + (" ⚠" if self.saturated else ""), f"{self.server_cpu:.0%}",
            f"{self.server_cpu_ms:.2f}", self.label, f"{self.others_cpu:.0%}", str(self.repeats),
            f"{self.spread['rps'][0]:.1f}", f"{self.spread['rps'][1]:.1f}",
        ]  # fmt: skip


SPREAD = ("rps", "median_ms", "p90_ms")  # the figures whose spread over the runs a row keeps


def combine(runs: list[Row], settings: Settings) -> Row:
    """One row from several runs of the same load: the median of each figure, the spread (min, max) of
    the throughput and of the response times, and what bounded the median run, judged anew."""
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    summary: dict = {}
    for key, value in first.summary.items():
        values = [run.summary.get(key) for run in runs]
        if isinstance(value, int | float) and all(isinstance(v, int | float) for v in values):
            summary[key] = statistics.median(values)
    summary["errors"] = dict(sum((Counter(run.summary["errors"]) for run in runs), Counter()))
    summary["failures"] = round(summary["failures"])
    summary["requests"] = round(summary["requests"])

    def median(key: str) -> float:
        return statistics.median(getattr(run, key) for run in runs)

    steals = [run.steal_cpu for run in runs if run.steal_cpu is not None]
    row = Row(
        first.mode, summary, median("locust_cpu"), median("server_cpu"), median("seconds"), median("server_cpu_ms"),
        others_cpu=median("others_cpu"), steal_cpu=statistics.median(steals) if steals else None,
        cpus=first.cpus, busy_runs=sum(run.busy_runs for run in runs), others_max=max(run.others_cpu for run in runs),
        repeats=len(runs), runs=[run.runs[0] for run in runs],
    )  # fmt: skip
    row.spread = {key: [min(r.summary[key] for r in runs), max(r.summary[key] for r in runs)] for key in SPREAD}
    row.bound, row.why = judge(row, settings)
    return row


def errors(summary: dict) -> str:
    return "; ".join(f"{n} x {e}" for e, n in summary["errors"].items())[:300]


def judge(row: Row, settings: Settings) -> tuple[str, str]:
    """What bounded a row, and why, from what was measured in it: the first that holds of
    the load generator at its limit, failures, the users' wait (the closed loop's ceiling reached),
    the cores shared by locust and the server, the server's CPU (one core, where its Python code runs on one
    core at a time: one thread, or threads under the GIL of the interpreter recorded in settings), and else
    the server itself (its requests wait inside it: for its work, for a worker, or in its accept queue). The
    rest of the machine is not a bound of the row: `Row.machine` says when it was busy, beside the bound."""
    s = settings
    rps, requests, failures = row.summary["rps"], row.summary["requests"], row.summary["failures"]
    response_s = row.summary["average_ms"] / 1000
    if row.locust_cpu > SATURATED:
        return LOCUST, (
            f"locust used {row.locust_cpu:.0%} of a core: it measures itself, not the server "
            f"(try --processes {s.processes + 1}, or fewer users)"
        )
    if row.locust_cpu >= LOCUST_BUSY and row.server_cpu < 0.5:
        return LOCUST, (
            f"locust used {row.locust_cpu:.0%} of a core and the server {row.server_cpu:.0%}: most of each "
            "request's time is spent in locust, so it measures itself more than the server"
        )
    if requests == 0 or failures / requests > FAILED:
        share = failures / requests if requests else 1.0
        return FAILURES, f"{share:.0%} of the requests failed ({errors(row.summary) or 'none made'})"
    if s.ceiling and rps >= WAIT_BOUND * s.ceiling:
        return WAIT, (
            f"{rps:.0f} requests/s is {rps / s.ceiling:.0%} of the ceiling N / Z = {s.users} / {s.mean_wait:g} s "
            f"= {s.ceiling:.0f}: the server answers in {response_s * 1000:.0f} ms while each user waits "
            f"{s.mean_wait * 1000:.0f} ms, so the users' wait sets the throughput, not the server"
        )
    used = row.locust_cpu * s.processes + row.server_cpu
    if row.server_cpu >= BUSY * s.cores:
        return SERVER_CPU, f"the server used {row.server_cpu:.2f} of {s.cores} cores"
    if used >= BUSY * s.cores:
        return CORES, (
            f"locust ({row.locust_cpu * s.processes:.2f}) and the server ({row.server_cpu:.2f}) used "
            f"{used:.2f} of {s.cores} cores together: the server cannot have more"
        )
    if row.server_cpu >= BUSY and s.one_core_at_a_time(row.mode):
        how = (
            "threads taking turns under the GIL" if s.gil and row.mode not in ("single", "eventloop") else "one thread"
        )
        return SERVER_CPU, (
            f"the server used {row.server_cpu:.0%} of a core, and its Python code runs on one core at a time ({how})"
        )
    return SERVER, (
        f"the server took {response_s * 1000:.0f} ms per request on average with its CPU at "
        f"{row.server_cpu:.0%} and locust at {row.locust_cpu:.0%}: requests wait inside the server "
        "(for its work, for a worker, or in its accept queue)"
    )


class CompareError(Exception):
    """The experiment could not run (the message says why)."""


def open_file_limit(users: int, raise_it: bool) -> tuple[int, str]:
    """The soft open-file limit that locust and the servers inherit (raised toward the hard one if
    asked), and a warning when it caps the users: each user holds a connection, a server one per client."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = users + 1024
    if raise_it and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (ValueError, OSError):
            pass
    if soft < wanted:
        return soft, f"the open-file limit ({soft}) is below {wanted}: it caps the users (`ulimit -n` raises it)"
    return soft, ""


def locust_command(settings: Settings, server: Server, summary: Path) -> list[str]:
    command = [sys.executable, "-m", "locust", "-f", str(KIT / "locustfile.py"), "--headless", "--only-summary"]
    command += ["--host", f"http://{server.host}:{server.port}", "-u", str(settings.users)]
    command += ["-r", f"{settings.spawn_rate:g}", "-t", f"{settings.run_time:g}s", "--reset-stats"]
    command += ["--min-wait", f"{settings.min_wait:g}", "--max-wait", f"{settings.max_wait:g}"]
    command += ["--request-timeout", f"{settings.request_timeout:g}", "--summary-file", str(summary)]
    command += ["--stop-timeout", "5", "--exit-code-on-error", "0"]
    if settings.processes > 1:  # locust's own workers, on this machine; the master listens on loopback only
        command += ["--processes", str(settings.processes), "--master-bind-host", "127.0.0.1"]
    return command


def server_arguments(mode: str, settings: Settings) -> list[str]:
    args = ["--port", "0", "--work-ms", f"{settings.work_ms:g}", "--work-kind", settings.work_kind]
    return args + (["--start-method", settings.start_method] if mode == "multiprocess" else [])


def start(submission: Path, mode: str, settings: Settings, work: Path, extra: tuple[str, ...] = ()) -> Server:
    server = Server(submission / f"{mode}_server.py", [*server_arguments(mode, settings), *extra], work / "logs")
    try:
        return server.start()
    except ServerError as exc:
        server.kill()
        raise CompareError(f"{mode}_server.py did not start: it {exc}; {server.errors().strip()[-300:]}") from None


def cpu_seconds(proc: psutil.Process) -> float:
    """CPU time (user and system) of proc and of its live descendants, each with the children it has
    collected (the children of a fork server are collected by the fork server, not by the server)."""
    try:
        descendants = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return math.nan
    total = 0.0
    for i, child in enumerate(descendants):
        try:
            times = child.cpu_times()
        except psutil.Error:
            if i == 0:
                return math.nan
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_cpu() -> float:
    """CPU time of this process, its threads included (its samples, a timeline's clients)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class MachineCpu:
    """The whole machine's CPU time on the CPUs this process may run on: cumulative seconds busy (user,
    nice and system time of every process; guest time is counted in user; interrupts are left out, as
    most of them here are the loopback traffic of the run itself) and stolen (the hypervisor ran another
    machine on them, where the kernel reports steal)."""

    def __init__(self) -> None:
        try:
            self.ids = sorted(os.sched_getaffinity(0))
        except AttributeError:  # macOS: no affinity, every CPU
            self.ids = list(range(psutil.cpu_count() or 1))

    @property
    def count(self) -> int:
        return len(self.ids)

    def sample(self) -> tuple[float, float | None]:
        """(busy seconds, steal seconds or None where the kernel does not report it), summed over the CPUs."""
        times = psutil.cpu_times(percpu=True)
        mine = [times[i] for i in self.ids if i < len(times)] or times
        steal = sum(t.steal for t in mine) if hasattr(mine[0], "steal") else None
        return sum(t.user + t.nice + t.system for t in mine) + (steal or 0.0), steal


@dataclass
class Look:
    """A short look at the machine before a run (as pyperf does): what other processes took of its CPUs."""

    others: float  # CPUs other processes used over the look, steal included
    steal: float | None
    cpus: int  # the CPUs looked at
    load: float  # the 1-minute load average (information: it lags a minute behind)
    seconds: float

    @property
    def quiet(self) -> bool:
        return self.others <= MACHINE_BUSY * self.cpus

    def describe(self) -> str:
        state = "quiet" if self.quiet else "not quiet"
        steal = f", {self.steal:.2f} stolen by the hypervisor" if self.steal else ""
        return (
            f"the machine before the run: {state}: other processes used {self.others:.2f} of its {self.cpus} CPUs "
            f"({self.others / self.cpus:.0%}{steal}) over {self.seconds:g} s; load average {self.load:.1f}"
        )


def look(seconds: float = QUIET_LOOK) -> Look:
    """What the rest of the machine uses of its CPUs, over a short look."""
    cpu = MachineCpu()
    (busy0, steal0), own0, t0 = cpu.sample(), own_cpu(), time.monotonic()
    time.sleep(seconds)
    (busy1, steal1), own1, t1 = cpu.sample(), own_cpu(), time.monotonic()
    window = max(t1 - t0, 1e-3)
    others = min(max((busy1 - busy0 - (own1 - own0)) / window, 0.0), cpu.count)  # ticks of 10 ms: may round over
    steal = (steal1 - steal0) / window if steal0 is not None and steal1 is not None else None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    return Look(round(others, 3), None if steal is None else round(steal, 3), cpu.count, load, seconds)


def at(samples: list[tuple[float, float]], moment: float) -> float:
    """The value of a cumulative counter at a moment, by linear interpolation between samples (time, value)."""
    samples = [(t, v) for t, v in samples if not math.isnan(v)]
    if not samples:
        return math.nan
    before = [s for s in samples if s[0] <= moment] or samples[:1]
    after = [s for s in samples if s[0] >= moment] or samples[-1:]
    (t0, v0), (t1, v1) = before[-1], after[0]
    return v0 if t1 == t0 else v0 + (v1 - v0) * (moment - t0) / (t1 - t0)


def measure(server: Server, mode: str, settings: Settings, work: Path, name: str, on_tick=None) -> Row:
    """One locust run against a started server: its figures, and the CPU that locust and the server
    used over the steady window (from locust's reset of its statistics to its end)."""
    summary = work / f"{name}.json"
    summary.unlink(missing_ok=True)
    serving = server.process()
    cpu = MachineCpu()
    launched, locust_before = time.time(), children_cpu()
    server_samples: list[tuple[float, float]] = [(launched, cpu_seconds(serving))]
    locust_samples: list[tuple[float, float]] = [(launched, 0.0)]
    machine_samples: list[tuple[float, float, float, float]] = []  # (time, busy, steal, this process)

    def sample_machine() -> None:
        busy, steal = cpu.sample()
        machine_samples.append((time.time(), busy, math.nan if steal is None else steal, own_cpu()))

    sample_machine()
    with open(work / f"locust-{name}.log", "wb") as log:
        locust = subprocess.Popen(
            locust_command(settings, server, summary), stdout=log, stderr=subprocess.STDOUT, cwd=work
        )
        generator = psutil.Process(locust.pid)
        deadline = time.monotonic() + settings.run_time + 60
        while locust.poll() is None:
            if time.monotonic() > deadline:
                locust.kill()
                locust.wait()
                raise CompareError(f"locust did not stop within {settings.run_time + 60:g} s ({name})")
            now = time.time()
            server_samples.append((now, cpu_seconds(serving)))
            locust_samples.append((now, cpu_seconds(generator)))
            sample_machine()
            if on_tick:
                on_tick(min(now - launched, settings.run_time))
            time.sleep(SAMPLE_EVERY)
    end = time.time()
    server_samples.append((end, cpu_seconds(serving)))
    sample_machine()
    locust_total = children_cpu() - locust_before  # exact: locust and its workers, collected
    if not summary.exists():
        tail = (work / f"locust-{name}.log").read_text(errors="replace")[-1500:]
        raise CompareError(f"locust wrote no figures for {name}:\n{tail}")
    figures = json.loads(summary.read_text())
    start_time = figures.get("start_time") or launched
    seconds = max(end - start_time, 1e-3)
    locust_cpu = (locust_total - at(locust_samples, start_time)) / seconds / settings.processes
    server_cpu = (server_samples[-1][1] - at(server_samples, start_time)) / seconds
    if math.isnan(server_cpu):
        raise CompareError(f"the {mode} server exited during the run: {server.errors().strip()[-300:]}")
    locust_cpu, server_cpu = max(locust_cpu, 0.0), max(server_cpu, 0.0)

    def window(column: int) -> float:  # a counter's increase over the steady window, per second
        series = [(sample[0], sample[column]) for sample in machine_samples]
        return (series[-1][1] - at(series, start_time)) / seconds

    others = window(1) - window(3) - locust_cpu * settings.processes - server_cpu
    steal = None if math.isnan(machine_samples[-1][2]) else round(max(window(2), 0.0), 3)
    others = min(max(others, 0.0), cpu.count)  # counted in ticks of 10 ms: a short window may round over
    return Row.measured(mode, figures, locust_cpu, server_cpu, seconds, settings, round(others, 3), steal, cpu.count)


def run_mode(submission: Path, mode: str, settings: Settings, work: Path, repeat: int = 1, meter=None) -> Row:
    """One row: the mode's server under the locust load, repeat times (the row holds the medians)."""
    server = start(submission, mode, settings, work)
    runs = []
    try:
        for r in range(repeat):
            if meter:
                meter.begin(mode + (f", run {r + 1} of {repeat}" if repeat > 1 else ""))
            runs.append(measure(server, mode, settings, work, f"{mode}-{r}", meter.tick if meter else None))
            if meter:
                meter.end()
    finally:
        server.kill()
    return combine(runs, settings)


class Meter:
    """Progress on a terminal (rich): the runs done of all, and the time left; nothing when the output is not
    a terminal (a log gets the results alone). Each run counts for its run time: begin(), tick(seconds into
    the run) while it runs, end()."""

    def __init__(self, console, runs: int, run_time: float, what: str = "runs") -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.run_time, self.runs, self.done, self.what = run_time, runs, 0, what
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(),
            TextColumn("{task.fields[done]}/{task.fields[runs]} " + what), TimeElapsedColumn(), TextColumn("left"),
            TimeRemainingColumn(), console=console,
            disable=console is None or not console.is_terminal,
        )  # fmt: skip
        self.task = None

    def __enter__(self) -> "Meter":
        self.progress.start()
        self.task = self.progress.add_task("starting", total=max(self.runs * self.run_time, 1e-9), done=0,
                                           runs=self.runs)  # fmt: skip
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.progress.update(self.task, completed=self.runs * self.run_time, description="done")
        self.progress.stop()

    def begin(self, description: str) -> None:
        self.progress.update(self.task, description=description, completed=self.done * self.run_time)

    def tick(self, seconds: float) -> None:
        self.progress.update(self.task, completed=(self.done + min(seconds / self.run_time, 1.0)) * self.run_time)

    def end(self) -> None:
        self.done += 1
        self.progress.update(self.task, completed=self.done * self.run_time, done=self.done)


def markdown(rows: list[Row], settings: Settings, notes: list[str], before: Look | None = None) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    text = "Times in ms; RPS and Failures/s per second; CPU as a share of one core, over the steady window; "
    text += "CPU ms/req: the server's CPU time per request; Other CPU: what the machine's other processes took. "
    text += "A row of several runs holds their medians, and RPS min and max.\n\n"
    machine = [before.describe()] if before else []
    text += "\n".join(lines) + "\n\nSettings:\n" + "".join(f"- {line}\n" for line in settings.lines() + machine)
    all_notes = notes + [f"{row.mode}: {note}" for row in rows for note in row.notes]
    if all_notes:
        text += "\nWhat bounds each row:\n" + "\n".join(f"- {note}" for note in all_notes) + "\n"
    return text


def chart(rows: list[Row], settings: Settings, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [row.mode for row in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    rps = [row.summary["rps"] for row in rows]
    spread = [[r - row.spread["rps"][0] for r, row in zip(rps, rows, strict=True)],
              [row.spread["rps"][1] - r for r, row in zip(rps, rows, strict=True)]]  # fmt: skip
    bars = left.bar(modes, rps, color=[COLORS.get(mode, "#937860") for mode in modes], yerr=spread, capsize=4)
    runs = max(row.repeats for row in rows)
    left.set_title("Throughput, and what bounds it" + (f" (median of {runs} runs, min-max)" if runs > 1 else ""))
    left.set_ylabel("requests/s")
    for bar, row in zip(bars, rows, strict=True):
        label = f"{row.summary['rps']:.0f}\n{row.bound}"
        if row.machine_busy:
            label += f"\nmachine busy ({row.others_max / row.cpus:.0%})"
        if row.summary["failures"]:
            label += f"\n{row.summary['failures']} failed"
        artefact = row.bound in (LOCUST, WAIT, FAILURES, CORES) or row.machine_busy
        left.annotate(label, (bar.get_x() + bar.get_width() / 2, row.spread["rps"][1]), ha="center", va="bottom",
                      color="#c44e52" if artefact else "black", fontsize=9)  # fmt: skip
    if settings.ceiling:
        left.axhline(settings.ceiling, color="grey", linestyle=":", linewidth=1)
        left.annotate(f"ceiling N / Z = {settings.ceiling:.0f}", (-0.4, settings.ceiling), va="bottom", fontsize=8,
                      color="grey")  # fmt: skip
    left.set_ylim(0, max([*(row.spread["rps"][1] for row in rows), settings.ceiling or 0, 1]) * 1.4)
    x = range(len(rows))
    width = 0.38
    for offset, key, name in ((-width / 2, "median_ms", "median"), (width / 2, "p90_ms", "90%")):
        values = [row.summary[key] for row in rows]
        errors = [[v - row.spread[key][0] for v, row in zip(values, rows, strict=True)],
                  [row.spread[key][1] - v for v, row in zip(values, rows, strict=True)]]  # fmt: skip
        right.bar([i + offset for i in x], values, width, label=name, yerr=errors, capsize=3)
    right.set_xticks(list(x), modes)
    right.set_title("Response time")
    right.set_ylabel("ms")
    right.legend()
    fig.suptitle(
        f"{settings.users} users, {settings.run_time:g} s, wait {settings.min_wait:g}-{settings.max_wait:g} s, "
        f"work: {settings.workload}, {settings.cores:g} cores, {settings.python}"
        + ("" if settings.gil else " without the GIL")
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


COLORS = {"single": "#4c72b0", "multiprocess": "#dd8452", "multithread": "#55a868", "threadpool": "#8172b3",
          "eventloop": "#937860"}  # fmt: skip


def write(
    rows: list[Row], settings: Settings, notes: list[str], out: Path, before: Look | None = None
) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / f"compare.{kind}" for kind in ("md", "csv", "json", "png")}
    paths["md"].write_text(markdown(rows, settings, notes, before))
    with open(paths["csv"], "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(COLUMNS)
        writer.writerows(row.cells() for row in rows)
    data = {
        "settings": asdict(settings) | {"ceiling": settings.ceiling},
        "interpreter": {"python": settings.python, "gil": settings.gil},
        "machine": (asdict(before) | {"quiet": before.quiet}) if before else None,
        "machine_busy_share": MACHINE_BUSY,
        "notes": notes,
        "rows": [asdict(row) | {"saturated": row.saturated, "machine_busy": row.machine_busy} for row in rows],
    }
    paths["json"].write_text(json.dumps(data, indent=2))
    chart(rows, settings, paths["png"])
    return paths


def check_submission(submission: Path, modes: list[str]) -> None:
    for mode in modes:
        if not (submission / f"{mode}_server.py").is_file() or not (submission / "handler.py").is_file():
            raise CompareError(f"{submission} has no {mode}_server.py and handler.py")


def run(submission: Path, modes: list[str], settings: Settings, out: Path, raise_limit: bool = False, console=None,
        repeat: int = 1, before: Look | None = None):  # fmt: skip
    """Run every mode (repeat times each); write the table (Markdown, CSV), the figures (JSON) and the chart
    (PNG) to out. before: the look at the machine taken before the run, written with the figures."""
    check_submission(submission, modes)
    settings.python, settings.gil = interpreter()
    settings.open_files, warning = open_file_limit(settings.users, raise_limit)
    notes = [warning] if warning else []
    rows = []
    meter = Meter(console, len(modes) * repeat, settings.run_time)
    with meter, tempfile.TemporaryDirectory(prefix="concurrency-lab-compare-") as tmp:
        for mode in modes:
            rows.append(run_mode(submission, mode, settings, Path(tmp), repeat, meter))
    return write(rows, settings, notes, out, before)


def parse_duration(text: str) -> float:
    """Seconds from "20", "20s", "2m" or "1h"."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        value = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 20s or 2m)") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"the run time must be positive, not {text!r}")
    if value != int(value):
        raise ValueError(f"locust runs for whole seconds, not {text!r}")
    return value


# The timeline: each server at work under one burst of clients -----------------------------------------

TIMELINE_CLIENTS = 12  # clients of a burst, all at once
TIMELINE_WORK_MS = 50.0  # work per request of a burst
TIMELINE_COLUMNS = [
    "mode", "work", "client", "port", "pid", "thread", "lane", "accept_pid", "connect_ms", "connected_ms",
    "accept_ms", "start_ms", "request_ms", "work_start_ms", "work_end_ms", "close_ms", "reply_ms", "eof_ms",
    "ran_ms", "stretches", "error",
]  # fmt: skip


@dataclass
class Served:
    """One request of a burst: the client's own times, and the server's events for it (time.time(), one
    clock for every process of the machine; None where the server recorded no such event)."""

    mode: str
    workload: str  # "50 ms io"
    client: int  # its place in the burst
    port: int  # the client's port: the key of the server's events
    connect: float  # the client called connect()
    connected: float | None = None  # connect() returned (the system's accept queue took it)
    reply: float | None = None  # the first byte of the reply arrived
    eof: float | None = None  # the client saw the end of the connection
    error: str = ""
    accept: float | None = None  # the server's accept() returned it
    accept_pid: int | None = None  # ... in this process
    pid: int | None = None  # the worker that served it: process ...
    thread: int | None = None  # ... and thread (its native id)
    start: float | None = None  # the worker took it (handle_client began)
    request: float | None = None  # its request was read
    work: tuple[float, float] | None = None  # the work (--work-ms), from its start to its end
    ran: list = field(default_factory=list)  # CPU work: the stretches of time in which the thread computed
    close: float | None = None  # the worker closed the connection
    lane: int = 0  # the worker's lane in the picture

    @property
    def worker(self) -> tuple[int, int] | None:
        return (self.pid, self.thread) if self.pid is not None else None

    @property
    def began(self) -> float | None:
        """When the worker took it: its first event in the worker."""
        return self.start if self.start is not None else self.request

    @property
    def ended(self) -> float | None:
        """When the worker was done with it: its close, or the end of its work; where the server recorded
        neither (an event loop closes connections itself), when the client saw the end."""
        done = [t for t in (self.close, self.work[1] if self.work else None) if t is not None]
        return max(done) if done else (self.eof if self.began is not None else None)

    def cells(self, t0: float) -> list:
        def ms(t: float | None) -> str:
            return "" if t is None else f"{(t - t0) * 1000:.2f}"

        ran = sum(b - a for a, b in self.ran) * 1000
        return [
            self.mode, self.workload, self.client, self.port, self.pid or "", self.thread or "", self.lane,
            self.accept_pid or "", ms(self.connect), ms(self.connected), ms(self.accept), ms(self.start),
            ms(self.request), ms(self.work[0] if self.work else None), ms(self.work[1] if self.work else None),
            ms(self.close), ms(self.reply), ms(self.eof), f"{ran:.2f}" if self.ran else "", len(self.ran), self.error,
        ]  # fmt: skip


def burst(host: str, port: int, clients: int, timeout: float) -> list[dict]:
    """clients connect at once (threads released together), each sends GET /timeline/I, reads its reply to the
    end; each one's own times (time.time())."""
    gate = threading.Barrier(clients)
    found: list[dict] = [{} for _ in range(clients)]

    def client(i: int) -> None:
        mine = found[i]
        try:
            gate.wait(timeout)
            mine["connect"] = time.time()
            with socket.create_connection((host, port), timeout=timeout) as sock:
                mine["connected"], mine["port"] = time.time(), sock.getsockname()[1]
                sock.sendall(f"GET /timeline/{i} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                while sock.recv(65536):
                    mine.setdefault("reply", time.time())
                mine["eof"] = time.time()
        except (OSError, threading.BrokenBarrierError) as exc:
            mine["error"] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=client, args=(i,), name=f"timeline client {i}") for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout * 3)
    return found


def events(path: Path) -> list[dict]:
    """The server's timeline lines (--timeline FILE), in the order of their times."""
    if not path.exists():
        return []
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return sorted(lines, key=lambda event: event.get("time", 0))


def joined(mode: str, workload: str, clients: list[dict], log: list[dict]) -> list[Served]:
    """Each client's times joined with the server's events for it: accept, start, request and close name the
    client's port; work is the worker's (process and thread), done for the request it read last."""
    served = []
    for i, mine in enumerate(clients):
        request = Served(mode, workload, i, mine.get("port", 0), mine.get("connect", math.nan), mine.get("connected"),
                         mine.get("reply"), mine.get("eof"), mine.get("error", ""))  # fmt: skip
        for event in log:
            if event.get("client") != request.port or not request.port:
                continue
            kind, at_time = event.get("event"), event.get("time")
            if kind == "accept" and request.accept is None:
                request.accept, request.accept_pid = at_time, event.get("pid")
            elif kind in ("start", "request", "close") and getattr(request, kind) is None:
                setattr(request, kind, at_time)
                if request.pid is None or kind == "start":
                    request.pid, request.thread = event.get("pid"), event.get("thread")
        served.append(request)
    for event in log:
        if event.get("event") != "work":
            continue
        worker = (event.get("pid"), event.get("thread"))
        began = event.get("began", event.get("time"))
        mine = [r for r in served if r.worker == worker and r.request is not None and r.request <= began + 1e-6]
        if mine:
            request = max(mine, key=lambda r: r.request)
            request.work, request.ran = (began, event.get("time")), event.get("ran") or []
    lanes: dict[tuple[int, int], int] = {}
    for request in sorted((r for r in served if r.worker), key=lambda r: r.began or math.inf):
        request.lane = lanes.setdefault(request.worker, len(lanes))
    return served


def at_once(served: list[Served]) -> int:
    """The most requests that workers were serving at the same moment."""
    moments = []
    for r in served:
        if r.began is not None and r.ended is not None:
            moments += [(r.began, 1), (r.ended, -1)]
    most = now = 0
    for _, step in sorted(moments, key=lambda m: (m[0], m[1])):  # an end before a start at the same moment
        now += step
        most = max(most, now)
    return most


@dataclass
class Burst:
    """One mode's server under one burst: its requests, and what the rest of the machine took meanwhile."""

    mode: str
    workload: str
    served: list[Served]
    others_cpu: float  # CPUs the machine's other processes took over the burst
    cpus: int
    start_method: str

    @property
    def t0(self) -> float:
        return min(r.connect for r in self.served)

    @property
    def seconds(self) -> float:
        ends = [t for r in self.served for t in (r.eof, r.close) if t is not None]
        return (max(ends) - self.t0) if ends else math.nan

    @property
    def workers(self) -> int:
        return len({r.worker for r in self.served if r.worker})

    @property
    def machine_busy(self) -> bool:
        return self.others_cpu > MACHINE_BUSY * self.cpus

    def summary(self) -> str:
        waits = [(r.began - r.connect) * 1000 for r in self.served if r.began is not None]
        failed = sum(bool(r.error) for r in self.served)
        text = (
            f"{len(self.served)} clients served in {self.seconds * 1000:.0f} ms by {self.workers} worker(s), "
            f"at most {at_once(self.served)} at once; a client waited {statistics.median(waits):.0f} ms (median) "
            "from connect() until a worker took it"
            if waits
            else "no request reached a worker"
        )
        if failed:
            text += f"; {failed} failed ({next(r.error for r in self.served if r.error)})"
        if self.machine_busy:
            text += f"; machine busy: other processes took {self.others_cpu:.2f} of the {self.cpus} CPUs"
        return text


def timeline_burst(submission: Path, mode: str, settings: Settings, work: Path) -> Burst:
    """The mode's server, started to record its timeline, under one burst of settings.users clients."""
    log = work / f"timeline-{mode}-{settings.work_kind}.jsonl"
    log.unlink(missing_ok=True)
    server = start(submission, mode, settings, work, ("--timeline", str(log)))
    cpu = MachineCpu()
    try:
        serving = server.process()
        (busy0, _), own0, server0, t0 = cpu.sample(), own_cpu(), cpu_seconds(serving), time.monotonic()
        clients = burst(server.host, server.port, settings.users, settings.request_timeout)
        ports = {c["port"] for c in clients if "port" in c}
        deadline = time.monotonic() + 2.0  # a close is written before the client sees it; accept lines may lag
        while time.monotonic() < deadline:
            seen = {e.get("client") for e in events(log) if e.get("event") == "close"}
            if ports <= seen:
                break
            time.sleep(0.05)
        (busy1, _), own1, server1, t1 = cpu.sample(), own_cpu(), cpu_seconds(serving), time.monotonic()
    finally:
        server.kill()
    recorded = events(log)
    if not recorded:
        raise CompareError(
            f"the {mode} server recorded no timeline: its handler.py must have the provided code that writes "
            f"--timeline FILE (the kit's handler.py has it); its output: {server.errors().strip()[-300:]}"
        )
    others = (busy1 - busy0 - (own1 - own0) - (server1 - server0)) / max(t1 - t0, 1e-3)
    return Burst(mode, settings.workload, joined(mode, settings.workload, clients, recorded), max(others, 0.0),
                 cpu.count, settings.start_method)  # fmt: skip


def lane_names(served: list[Served], server_pid: int | None) -> dict[int, str]:
    """A name for each lane: the server's one thread, a child process, or a thread."""
    workers = {r.lane: r.worker for r in served if r.worker}
    pids = {pid for pid, _ in workers.values()}
    names = {}
    for lane, (pid, thread) in workers.items():
        if len(workers) == 1:
            names[lane] = f"its one thread (pid {pid})"
        elif len(pids) == 1:
            names[lane] = "main thread" if pid == thread else f"thread {thread}"
        else:
            names[lane] = f"process {pid}" + ("" if pid != server_pid else " (the server)")
    return names


def burst_order(b: Burst) -> list[Served]:
    """A burst's requests in the order a picture draws them: lane by lane, each lane in the order it served."""
    return sorted(b.served, key=lambda r: (r.lane if r.worker else math.inf, r.began or math.inf, r.connect))


def draw_requests(axes, b: Burst, top: int = 0) -> list[Served]:
    """One burst's requests, a row each from row top down, in ms since its first connect(): the wait from
    connect() until a worker took it (dotted), the time the worker served it (a light bar, gid "served": one per
    request served), its work (dark: for CPU work, the stretches in which the thread computed), accept (▼),
    the reply's first byte (●) and the close (the bar's end). The requests in the order drawn."""
    color = COLORS.get(b.mode, "#937860")
    order = burst_order(b)
    t0 = b.t0

    def ms(t: float) -> float:
        return (t - t0) * 1000

    for y, r in enumerate(order, start=top):
        began = r.began if r.began is not None else r.eof
        if began is not None:
            axes.plot([ms(r.connect), ms(began)], [y, y], ":", color="grey", linewidth=1)
        axes.plot(ms(r.connect), y, "|", color="grey", markersize=7)
        if r.began is not None and r.ended is not None:
            axes.barh(y, ms(r.ended) - ms(r.began), left=ms(r.began), height=0.64, color=color, alpha=0.35,
                      gid="served")  # fmt: skip
            stretches = r.ran or ([list(r.work)] if r.work else [])
            for a, z in stretches:
                axes.barh(y, max(ms(z) - ms(a), 0.3), left=ms(a), height=0.64, color=color)
            axes.plot(ms(r.ended), y, "|", color="black", markersize=9)
        if r.accept is not None:
            axes.plot(ms(r.accept), y - 0.38, "v", color="black", markersize=4)
        if r.reply is not None:
            axes.plot(ms(r.reply), y, "o", color="black", markersize=3)
        if r.error:
            axes.plot(ms(r.connect), y, "x", color="#c44e52", markersize=8)
    return order


def burst_title(b: Burst) -> str:
    """What a burst's picture says of it: the mode (and start method), the work, how long, how many at once."""
    method = f", {b.start_method}" if b.mode == "multiprocess" else ""
    busy = f"; machine busy (others: {b.others_cpu / b.cpus:.0%})" if b.machine_busy else ""
    return (
        f"{b.mode}{method}, {b.workload}\n{b.seconds * 1000:.0f} ms, {b.workers} worker(s), "
        f"at most {at_once(b.served)} at once{busy}"
    )


def draw_timeline(axes, bursts: list[Burst], lanes: bool = True) -> None:
    """Bursts in one panel, one below the other (each in ms since its own first connect()): a row per
    request (draw_requests). lanes: a label per worker (a lane), as the timeline's own panels have; else a
    label per burst (its mode, how long it took, how many it served at once), as the lesson's panels have."""
    ticks: list[float] = []
    labels: list[str] = []
    colors: list[str] = []
    top = 0
    for b in bursts:
        order = draw_requests(axes, b, top)
        if lanes:
            names = lane_names(b.served, next((r.accept_pid for r in b.served if r.accept_pid), None))
            for lane, name in names.items():
                ys = [top + y for y, r in enumerate(order) if r.worker and r.lane == lane]
                ticks.append(sum(ys) / len(ys))
                labels.append(name)
                colors.append("black")
                if max(ys) < top + len(order) - 1:
                    axes.axhline(max(ys) + 0.5, color="#dddddd", linewidth=0.6)
        else:
            ticks.append(top + (len(order) - 1) / 2)
            busy = "\nmachine busy" if b.machine_busy else ""
            labels.append(f"{b.mode}\n{b.seconds * 1000:.0f} ms, {b.workers} worker(s)\n"
                          f"at most {at_once(b.served)} at once{busy}")  # fmt: skip
            colors.append("#c44e52" if b.machine_busy else COLORS.get(b.mode, "black"))
        top += len(order)
        if b is not bursts[-1]:
            axes.axhline(top - 0.5, color="#999999" if not lanes else "#dddddd", linewidth=0.8)
    small = len(labels) > 4 and lanes
    axes.set_yticks(ticks, labels, fontsize=6 if small else 8)
    for label, color in zip(axes.get_yticklabels(), colors, strict=True):
        label.set_color(color)
    axes.set_ylim(top - 0.4, -0.7)
    axes.set_xlim(left=-5)


def timeline_legend() -> list:
    """The legend of a timeline's marks."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    return [
        Line2D([], [], linestyle=":", color="grey", marker="|", label="connect() ... a worker takes it"),
        Line2D([], [], linestyle="", color="black", marker="v", markersize=4, label="accept() returned it"),
        Patch(color="grey", alpha=0.35, label="served by the worker"),
        Patch(color="grey", label="its work (CPU: while the thread ran)"),
        Line2D([], [], linestyle="", color="black", marker="o", markersize=3, label="reply's first byte"),
        Line2D([], [], linestyle="", color="black", marker="|", markersize=9, label="closed"),
    ]


def timeline_chart(bursts: list[Burst], path: Path) -> None:
    """A panel per mode (rows) and workload (columns): a row per request, grouped in a lane per worker
    (draw_timeline)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(dict.fromkeys(b.mode for b in bursts))
    works = list(dict.fromkeys(b.workload for b in bursts))
    rows = max(len(b.served) for b in bursts)
    size = (6.5 * len(works), (0.24 * rows + 0.6) * len(modes) + 1.6)
    fig, panels = plt.subplots(len(modes), len(works), figsize=size, squeeze=False, sharex="col")
    for b in bursts:
        axes = panels[modes.index(b.mode)][works.index(b.workload)]
        draw_timeline(axes, [b])
        axes.set_title(burst_title(b), fontsize=9, color="#c44e52" if b.machine_busy else "black")
        axes.set_ylabel("worker (a row per request)", fontsize=8)
    for axes in panels[-1]:
        axes.set_xlabel("ms since the first client called connect()")
    fig.legend(handles=timeline_legend(), loc="lower center", ncol=6, fontsize=8, frameon=False)
    clients = len(bursts[0].served)
    fig.suptitle(f"{clients} clients at once: who served each request, and when")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def timeline_markdown(bursts: list[Burst], settings: Settings) -> str:
    text = (
        f"The timeline: {settings.users} clients at once against each server (`compare --timeline`), each "
        "request drawn on the lane of the worker that served it, from the server's own record (`--timeline FILE` "
        f"of the provided code) and the clients' times. Interpreter of the servers: {settings.interpreter}.\n\n"
    )
    return text + "".join(f"- {b.mode}, {b.workload}: {b.summary()}\n" for b in bursts)


def write_timeline(bursts: list[Burst], settings: Settings, out: Path, prefix: str = "timeline") -> dict[str, Path]:
    """PREFIX.md (a line per burst), PREFIX.csv (a row per request, times in ms since its burst's first
    connect), PREFIX.json (every burst, as read_timeline() reads it back) and PREFIX.png (the picture) in out."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / f"{prefix}.{kind}" for kind in ("md", "csv", "json", "png")}
    paths["md"].write_text(timeline_markdown(bursts, settings))
    with open(paths["csv"], "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(TIMELINE_COLUMNS)
        for b in bursts:
            writer.writerows(r.cells(b.t0) for r in sorted(b.served, key=lambda r: r.client))
    data = {
        "settings": asdict(settings),
        "interpreter": {"python": settings.python, "gil": settings.gil},
        "bursts": [asdict(b) for b in bursts],
    }
    paths["json"].write_text(json.dumps(data, indent=1))
    timeline_chart(bursts, paths["png"])
    return paths


def read_timeline(path: Path) -> list[Burst]:
    """The bursts that write_timeline() wrote to PREFIX.json."""
    bursts = []
    for found in json.loads(path.read_text())["bursts"]:
        served = [Served(**(r | {"work": tuple(r["work"]) if r["work"] else None})) for r in found.pop("served")]
        bursts.append(Burst(served=served, **found))
    return bursts


def timeline(submission: Path, modes: list[str], settings: Settings, kinds: list[str], out: Path, console=None,
             prefix: str = "timeline") -> dict[str, Path]:  # fmt: skip
    """Each mode's server under one burst of settings.users clients, once per kind of work; write PREFIX.png
    (the picture), PREFIX.csv (a row per request), PREFIX.json (the bursts) and PREFIX.md (a line per burst)
    to out (write_timeline)."""
    check_submission(submission, modes)
    settings = replace(settings)
    settings.python, settings.gil = interpreter()
    bursts = []
    meter = Meter(console, len(modes) * len(kinds), 1.0, "bursts")
    with meter, tempfile.TemporaryDirectory(prefix="concurrency-lab-timeline-") as tmp:
        for mode in modes:
            for kind in kinds:
                meter.begin(f"timeline: {mode}, {settings.work_ms:g} ms {kind}")
                bursts.append(timeline_burst(submission, mode, replace(settings, work_kind=kind), Path(tmp)))
                meter.end()
    return write_timeline(bursts, settings, out, prefix)
