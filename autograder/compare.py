"""`python -m autograder compare`: the report's experiment, measured honestly.

Each mode's server is started in turn (a subprocess on 127.0.0.1), the kit's locustfile is run
against it headless with the same settings (locust as a subprocess, never imported here), and the
exact final figures come from the locustfile's summary (locust's CSV misses the end of short runs).
Figures cover the steady window only (`--reset-stats` drops the ramp-up); the CPU of locust and of
the server is sampled over that same window. Every row then says what bounded it (`judge`): the
users' own wait (a closed loop cannot go past N / (R + Z)), the load generator, the machine's cores,
the server's CPU, the server itself, or failures. `sweep.py` steps the load up to find each mode's
capacity.
"""

import csv
import json
import math
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from autograder import KIT
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

# What bounded a row, from what was measured in it (see judge()).
LOCUST, FAILURES, WAIT, CORES, SERVER_CPU, SERVER = (
    "locust", "failures", "users' wait", "cores", "server CPU", "server",
)  # fmt: skip

COLUMNS = [
    "Server", "Type", "Name", "# Requests", "# Fails", "Median", "90%ile", "Average", "Min", "Max",
    "Average size", "RPS", "Failures/s", "Locust CPU", "Server CPU", "CPU ms/req", "Bound by",
]  # fmt: skip


def cores() -> int:
    """The cores this process (and so locust and the servers it starts) may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


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
    cores: int = field(default_factory=cores)
    open_files: int = field(default_factory=lambda: resource.getrlimit(resource.RLIMIT_NOFILE)[0])

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
            f"open-file limit (ulimit -n): {self.open_files}; cores: {self.cores}; locust processes: {self.processes}",
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

    @classmethod
    def measured(cls, mode: str, summary: dict, locust_cpu: float, server_cpu: float, seconds: float,
                 settings: Settings) -> "Row":  # fmt: skip
        rps = summary["rps"]
        cpu_ms = server_cpu / rps * 1000 if rps else 0.0
        row = cls(mode, summary, locust_cpu, server_cpu, seconds, cpu_ms)
        row.bound, row.why = judge(row, settings)
        return row

    @property
    def saturated(self) -> bool:
        return self.locust_cpu > SATURATED

    @property
    def notes(self) -> list[str]:
        """What a reader must know to trust this row."""
        notes = [f"bound by {self.bound}: {self.why}"]
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
            f"{self.server_cpu_ms:.2f}", self.bound,
        ]  # fmt: skip


def errors(summary: dict) -> str:
    return "; ".join(f"{n} x {e}" for e, n in summary["errors"].items())[:300]


def judge(row: Row, settings: Settings) -> tuple[str, str]:
    """What bounded a row, and why, from what was measured in it: the first that holds of
    the load generator at its limit, failures, the users' wait (the closed loop's ceiling reached),
    the cores shared by locust and the server, the server's CPU, and else the server itself (its
    requests wait inside it: for its work, for a worker, or in its accept queue)."""
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
    if row.server_cpu >= BUSY and row.mode != "multiprocess":
        return SERVER_CPU, (
            f"the server used {row.server_cpu:.0%} of a core, and its Python code runs on one core at a time "
            "(one thread, or threads taking turns under the GIL)"
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


def start(submission: Path, mode: str, settings: Settings, work: Path) -> Server:
    server = Server(submission / f"{mode}_server.py", server_arguments(mode, settings), work / "logs")
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
    launched, locust_before = time.time(), children_cpu()
    server_samples: list[tuple[float, float]] = [(launched, cpu_seconds(serving))]
    locust_samples: list[tuple[float, float]] = [(launched, 0.0)]
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
            if on_tick:
                on_tick(min(now - launched, settings.run_time))
            time.sleep(SAMPLE_EVERY)
    end = time.time()
    server_samples.append((end, cpu_seconds(serving)))
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
    return Row.measured(mode, figures, max(locust_cpu, 0.0), max(server_cpu, 0.0), seconds, settings)


def run_mode(submission: Path, mode: str, settings: Settings, work: Path, on_tick=None) -> Row:
    """One row: the mode's server under the locust load."""
    server = start(submission, mode, settings, work)
    try:
        return measure(server, mode, settings, work, mode, on_tick)
    finally:
        server.kill()


def markdown(rows: list[Row], settings: Settings, notes: list[str]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    text = "Times in ms; RPS and Failures/s per second; CPU as a share of one core, over the steady window; "
    text += "CPU ms/req: the server's CPU time per request.\n\n"
    text += "\n".join(lines) + "\n\nSettings:\n" + "".join(f"- {line}\n" for line in settings.lines())
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
    bars = left.bar(modes, rps, color=[COLORS.get(mode, "#937860") for mode in modes])
    left.set_title("Throughput, and what bounds it")
    left.set_ylabel("requests/s")
    for bar, row in zip(bars, rows, strict=True):
        label = f"{row.summary['rps']:.0f}\n{row.bound}"
        if row.summary["failures"]:
            label += f"\n{row.summary['failures']} failed"
        artefact = row.bound in (LOCUST, WAIT, FAILURES, CORES)
        left.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                      color="#c44e52" if artefact else "black", fontsize=9)  # fmt: skip
    if settings.ceiling:
        left.axhline(settings.ceiling, color="grey", linestyle=":", linewidth=1)
        left.annotate(f"ceiling N / Z = {settings.ceiling:.0f}", (-0.4, settings.ceiling), va="bottom", fontsize=8,
                      color="grey")  # fmt: skip
    left.set_ylim(0, max([*rps, settings.ceiling or 0, 1]) * 1.3)
    x = range(len(rows))
    width = 0.38
    right.bar([i - width / 2 for i in x], [row.summary["median_ms"] for row in rows], width, label="median")
    right.bar([i + width / 2 for i in x], [row.summary["p90_ms"] for row in rows], width, label="90%")
    right.set_xticks(list(x), modes)
    right.set_title("Response time")
    right.set_ylabel("ms")
    right.legend()
    fig.suptitle(
        f"{settings.users} users, {settings.run_time:g} s, wait {settings.min_wait:g}-{settings.max_wait:g} s, "
        f"work: {settings.workload}, {settings.cores} cores"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


COLORS = {"single": "#4c72b0", "multiprocess": "#dd8452", "multithread": "#55a868", "threadpool": "#8172b3",
          "eventloop": "#937860"}  # fmt: skip


def write(rows: list[Row], settings: Settings, notes: list[str], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / f"compare.{kind}" for kind in ("md", "csv", "json", "png")}
    paths["md"].write_text(markdown(rows, settings, notes))
    with open(paths["csv"], "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(COLUMNS)
        writer.writerows(row.cells() for row in rows)
    data = {
        "settings": asdict(settings) | {"ceiling": settings.ceiling},
        "notes": notes,
        "rows": [asdict(row) | {"saturated": row.saturated} for row in rows],
    }
    paths["json"].write_text(json.dumps(data, indent=2))
    chart(rows, settings, paths["png"])
    return paths


def check_submission(submission: Path, modes: list[str]) -> None:
    for mode in modes:
        if not (submission / f"{mode}_server.py").is_file() or not (submission / "handler.py").is_file():
            raise CompareError(f"{submission} has no {mode}_server.py and handler.py")


def run(submission: Path, modes: list[str], settings: Settings, out: Path, raise_limit: bool = False, console=None):
    """Run every mode; write the table (Markdown, CSV), the figures (JSON) and the chart (PNG) to out."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    check_submission(submission, modes)
    settings.open_files, warning = open_file_limit(settings.users, raise_limit)
    notes = [warning] if warning else []
    rows = []
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(), console=console)
    with progress, tempfile.TemporaryDirectory(prefix="concurrency-lab-compare-") as tmp:
        total = len(modes) * settings.run_time
        task = progress.add_task("starting", total=total)
        for i, mode in enumerate(modes):
            done = i * settings.run_time
            progress.update(task, description=f"{mode} ({i + 1}/{len(modes)})", completed=done)
            row = run_mode(
                submission, mode, settings, Path(tmp), on_tick=lambda t, d=done: progress.update(task, completed=d + t)
            )
            rows.append(row)
        progress.update(task, completed=total, description="done")
    return write(rows, settings, notes, out)


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
