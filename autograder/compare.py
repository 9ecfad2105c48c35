"""`python -m autograder compare`: the report's experiment, measured honestly.

Each mode's server is started in turn (a subprocess on 127.0.0.1), the kit's locustfile is run
against it headless with the same settings (locust as a subprocess, never imported here), and the
exact final figures come from the locustfile's summary (locust's CSV misses the end of short runs).
Beside each row: the load generator's own CPU use (a saturated locust measures itself, not the
server), the server's CPU use, and what decides the failures (the client timeout, the open-file
limit). `--reset-stats` drops the ramp-up, so the figures cover the steady window only.
"""

import csv
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from autograder import KIT
from autograder.harness import Server, ServerError

PRESETS = {
    # users, spawn rate, run time (s), wait between requests of a user (s): min, max
    "quick": {"users": 100, "spawn_rate": 100, "run_time": 20, "min_wait": 0.05, "max_wait": 0.1},
    "report": {"users": 10000, "spawn_rate": 1000, "run_time": 60, "min_wait": 1.0, "max_wait": 5.0},
}
SATURATED = 0.9  # a locust process busier than this (share of one core) measures itself
COLUMNS = [
    "Server", "Type", "Name", "# Requests", "# Fails", "Median", "90%ile", "Average", "Min", "Max",
    "Average size", "RPS", "Failures/s", "Locust CPU", "Server CPU",
]  # fmt: skip


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
    start_method: str | None = None


@dataclass
class Row:
    mode: str
    summary: dict
    locust_cpu: float  # share of one core, per locust process
    server_cpu: float  # share of one core (over 1 when it used several)
    seconds: float

    @property
    def saturated(self) -> bool:
        return self.locust_cpu > SATURATED

    @property
    def notes(self) -> list[str]:
        """What a reader must know to trust this row."""
        notes = []
        if self.saturated:
            notes.append(
                f"locust used {self.locust_cpu:.0%} of a core: this row measures locust, not the server "
                "(try --processes 2, or fewer users)"
            )
        if self.summary["failures"]:
            errors = "; ".join(f"{n} x {e}" for e, n in self.summary["errors"].items())
            notes.append(f"{self.summary['failures']} failures: {errors[:300]}")
        return notes

    def cells(self) -> list[str]:
        s = self.summary
        return [
            self.mode, "GET", "/", str(s["requests"]), str(s["failures"]), f"{s['median_ms']:.0f}",
            f"{s['p90_ms']:.0f}", f"{s['average_ms']:.0f}", f"{s['min_ms']:.0f}", f"{s['max_ms']:.0f}",
            f"{s['average_size']:.0f}", f"{s['rps']:.1f}", f"{s['failures_per_s']:.2f}",
            f"{self.locust_cpu:.0%}" + (" ⚠" if self.saturated else ""), f"{self.server_cpu:.0%}",
        ]  # fmt: skip


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


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_mode(submission: Path, mode: str, settings: Settings, work: Path, on_tick=None) -> Row:
    """One row: the mode's server under the locust load."""
    args = ["--port", "0", "--work-ms", f"{settings.work_ms:g}", "--work-kind", settings.work_kind]
    if mode == "multiprocess" and settings.start_method:
        args += ["--start-method", settings.start_method]
    server = Server(submission / f"{mode}_server.py", args, work / "logs")
    summary = work / f"{mode}.json"
    try:
        try:
            server.start()
        except ServerError as exc:
            raise CompareError(f"{mode}_server.py did not start: it {exc}; {server.errors().strip()[-300:]}") from None
        cpu_before, start = children_cpu(), time.monotonic()
        with open(work / f"locust-{mode}.log", "wb") as log:
            locust = subprocess.Popen(
                locust_command(settings, server, summary), stdout=log, stderr=subprocess.STDOUT, cwd=work
            )
            deadline = start + settings.run_time + 60
            while locust.poll() is None:
                if time.monotonic() > deadline:
                    locust.kill()
                    locust.wait()
                    raise CompareError(f"locust did not stop within {settings.run_time + 60:g} s ({mode})")
                if on_tick:
                    on_tick(min(time.monotonic() - start, settings.run_time))
                time.sleep(0.25)
        seconds = time.monotonic() - start
        locust_cpu = (children_cpu() - cpu_before) / seconds / settings.processes
        times = server.process().cpu_times()
        server_cpu = (times.user + times.system + times.children_user + times.children_system) / seconds
    finally:
        server.kill()
    if not summary.exists():
        tail = (work / f"locust-{mode}.log").read_text(errors="replace")[-1500:]
        raise CompareError(f"locust wrote no figures for {mode}:\n{tail}")
    return Row(mode, json.loads(summary.read_text()), locust_cpu, server_cpu, seconds)


def markdown(rows: list[Row], settings: Settings, notes: list[str]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    setting = (
        f"{settings.users} users, spawn rate {settings.spawn_rate:g}/s, {settings.run_time:g} s (steady window "
        f"only: --reset-stats), wait {settings.min_wait:g}-{settings.max_wait:g} s, client timeout "
        f"{settings.request_timeout:g} s, {settings.processes} locust process(es)"
    )
    if settings.work_ms:
        setting += f", work per request: {settings.work_ms:g} ms {settings.work_kind}"
    text = f"Settings: {setting}.\nTimes in ms; RPS and Failures/s per second; CPU as a share of one core.\n\n"
    text += "\n".join(lines) + "\n"
    all_notes = notes + [f"{row.mode}: {note}" for row in rows for note in row.notes]
    if all_notes:
        text += "\n" + "\n".join(f"- {note}" for note in all_notes) + "\n"
    return text


def chart(rows: list[Row], settings: Settings, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [row.mode for row in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    rps = [row.summary["rps"] for row in rows]
    bars = left.bar(modes, rps, color=["#4c72b0", "#dd8452", "#55a868", "#8172b3", "#937860"][: len(rows)])
    left.set_title("Throughput")
    left.set_ylabel("requests/s")
    for bar, row in zip(bars, rows, strict=True):
        label = f"{row.summary['rps']:.0f}"
        if row.summary["failures"]:
            label += f"\n{row.summary['failures']} failed"
        if row.saturated:
            label += "\nlocust saturated"
        left.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                      color="#c44e52" if row.summary["failures"] or row.saturated else "black", fontsize=9)  # fmt: skip
    left.set_ylim(0, max([*rps, 1]) * 1.3)
    x = range(len(rows))
    width = 0.38
    right.bar([i - width / 2 for i in x], [row.summary["median_ms"] for row in rows], width, label="median")
    right.bar([i + width / 2 for i in x], [row.summary["p90_ms"] for row in rows], width, label="90%")
    right.set_xticks(list(x), modes)
    right.set_title("Response time")
    right.set_ylabel("ms")
    right.legend()
    work = f", {settings.work_ms:g} ms {settings.work_kind} work" if settings.work_ms else ""
    fig.suptitle(
        f"{settings.users} users, {settings.run_time:g} s, wait {settings.min_wait:g}-{settings.max_wait:g} s{work}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(rows: list[Row], settings: Settings, notes: list[str], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / f"compare.{kind}" for kind in ("md", "csv", "json", "png")}
    paths["md"].write_text(markdown(rows, settings, notes))
    with open(paths["csv"], "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(COLUMNS)
        writer.writerows(row.cells() for row in rows)
    data = {
        "settings": asdict(settings),
        "notes": notes,
        "rows": [asdict(row) | {"saturated": row.saturated} for row in rows],
    }
    paths["json"].write_text(json.dumps(data, indent=2))
    chart(rows, settings, paths["png"])
    return paths


def run(submission: Path, modes: list[str], settings: Settings, out: Path, raise_limit: bool = False, console=None):
    """Run every mode; write the table (Markdown, CSV), the figures (JSON) and the chart (PNG) to out."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    for mode in modes:
        if not (submission / f"{mode}_server.py").is_file() or not (submission / "handler.py").is_file():
            raise CompareError(f"{submission} has no {mode}_server.py and handler.py")
    _, warning = open_file_limit(settings.users, raise_limit)
    notes = [f"client timeout {settings.request_timeout:g} s: a request that takes longer counts as a failure"]
    notes += [warning] if warning else []
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
    return value
