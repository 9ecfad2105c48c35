"""`python -m autograder compare --sweep`: each mode's capacity, found by stepping the load up.

A closed loop of N users that never wait offers as much load as N clients can: each asks again as
soon as it has its reply. For each mode, one server is started and locust runs once per step (1, 2,
4, ... users), each step measured as `compare` measures a row (steady window, CPU of locust and of
the server, what bounded it). The knee is the first step that reaches 90% of the most the mode
served at a step locust could measure: past it, more users only wait longer. `--preset lesson`
sweeps three workloads (none, 20 ms of I/O, 20 ms of CPU) into folders of their own and draws one
figure with a panel per workload.
"""

import csv
import json
import tempfile
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path

from autograder.compare import COLORS, FAILURES, LOCUST, Row, Settings, check_submission, measure, start

STEPS = (1, 2, 4, 8, 16, 32)  # users per step
STEP_TIME = 5.0  # seconds per step, the spawn included (the figures leave it out)
KNEE = 0.9  # the knee: the first step at this share of the mode's best measurable throughput
GROWING = 1.1  # a last step still this much above the one before: capacity not reached yet
WORKLOADS = {"none": (0.0, "io"), "io": (20.0, "io"), "cpu": (20.0, "cpu")}  # --preset lesson: folder -> work
UNTRUSTED = (LOCUST, FAILURES)  # steps that say nothing of the server's capacity
CSV_COLUMNS = [
    "mode", "users", "requests", "failures", "rps", "median_ms", "p90_ms", "locust_cpu", "server_cpu",
    "server_cpu_ms", "bound", "knee",
]  # fmt: skip


@dataclass
class Knee:
    mode: str
    users: int  # at the knee; 0 when no step could be measured
    rps: float  # the capacity: the most served at a measurable step
    p90_ms: float
    bound: str  # what bounded the best step: what sets the capacity
    reached: bool  # False: throughput still grew at the last step, or locust saturated first (a lower bound)

    def describe(self) -> str:
        if not self.users:
            return f"{self.mode}: no step could be measured (locust saturated or requests failed at every step)"
        users = f"{self.users} user" + ("s" if self.users > 1 else "")
        text = f"{self.mode}: {self.rps:.0f} requests/s from {users} (90% in {self.p90_ms:.0f} ms)"
        return text + (f", bound by {self.bound}" if self.reached else ", at least: locust or the steps ran out first")


def knee(rows: list[Row], users: list[int]) -> Knee:
    """The knee of one mode's steps (rows in the order of users)."""
    mode = rows[0].mode
    trusted = [(n, row) for n, row in zip(users, rows, strict=True) if row.bound not in UNTRUSTED]
    if not trusted:
        best = max(rows, key=lambda row: row.summary["rps"])
        return Knee(mode, 0, best.summary["rps"], best.summary["p90_ms"], best.bound, False)
    top = max((row for _, row in trusted), key=lambda row: row.summary["rps"])
    best = top.summary["rps"]
    n, row = next((n, row) for n, row in trusted if row.summary["rps"] >= KNEE * best)
    last = users.index(trusted[-1][0])
    growing = last > 0 and rows[last].summary["rps"] > GROWING * rows[last - 1].summary["rps"]
    saturated_above = any(r.summary["rps"] > best for r in rows if r.bound == LOCUST)
    reached = not (n == trusted[-1][0] and growing) and not saturated_above
    return Knee(mode, n, best, row.summary["p90_ms"], top.bound, reached)


@dataclass
class Sweep:
    settings: Settings  # of the first step; users, spawn rate and run time change per step
    users: list[int]
    rows: dict[str, list[Row]]  # mode -> its steps

    @cached_property
    def knees(self) -> dict[str, Knee]:  # the rows do not change once measured
        return {mode: knee(rows, self.users) for mode, rows in self.rows.items()}


def step_settings(settings: Settings, users: int, step_time: float) -> Settings:
    return replace(settings, users=users, spawn_rate=users, run_time=step_time, min_wait=0.0, max_wait=0.0)


def run(submission: Path, modes: list[str], settings: Settings, users: list[int], step_time: float,
        on_step=None) -> Sweep:  # fmt: skip
    """Sweep each mode: one server per mode, one locust run per step."""
    check_submission(submission, modes)
    rows: dict[str, list[Row]] = {}
    with tempfile.TemporaryDirectory(prefix="concurrency-lab-sweep-") as tmp:
        for mode in modes:
            server = start(submission, mode, settings, Path(tmp))
            try:
                rows[mode] = []
                for n in users:
                    step = step_settings(settings, n, step_time)
                    rows[mode].append(measure(server, mode, step, Path(tmp), f"{mode}-{n}"))
                    if on_step:
                        on_step(mode, n)
            finally:
                server.kill()
    return Sweep(step_settings(settings, users[0], step_time), users, rows)


def markdown(sweep: Sweep) -> str:
    s = sweep.settings
    text = (
        f"Capacity sweep: users that never wait, {', '.join(map(str, sweep.users))} of them in turn, "
        f"{s.run_time:g} s a step (the figures leave the spawn out); work per request: {s.workload}; "
        f"{s.cores} cores; {s.processes} locust process(es); start method {s.start_method}; client timeout "
        f"{s.request_timeout:g} s; ulimit -n {s.open_files}.\n\n"
    )
    text += "Capacity (the knee: the first step at 90% of the most a step served that locust could measure):\n\n"
    text += "".join(f"- {k.describe()}\n" for k in sweep.knees.values())
    header = ["users", "RPS", "Median", "90%ile", "# Fails", "Locust CPU", "Server CPU", "CPU ms/req", "Bound by"]
    for mode, rows in sweep.rows.items():
        knee_users = sweep.knees[mode].users
        text += f"\n{mode}:\n\n| " + " | ".join(header) + " |\n|" + " ---: |" * (len(header) - 1) + " --- |\n"
        for n, row in zip(sweep.users, rows, strict=True):
            r = row.summary
            mark = " (knee)" if n == knee_users else ""
            text += (
                f"| {n}{mark} | {r['rps']:.1f} | {r['median_ms']:.0f} | {r['p90_ms']:.0f} | {r['failures']} | "
                f"{row.locust_cpu:.0%} | {row.server_cpu:.0%} | {row.server_cpu_ms:.2f} | {row.bound} |\n"
            )
    return text


def csv_rows(sweep: Sweep) -> list[list]:
    knees = sweep.knees
    return [
        [
            mode,
            n,
            row.summary["requests"],
            row.summary["failures"],
            round(row.summary["rps"], 2),
            row.summary["median_ms"],
            row.summary["p90_ms"],
            round(row.locust_cpu, 3),
            round(row.server_cpu, 3),
            round(row.server_cpu_ms, 3),
            row.bound,
            "yes" if n == knees[mode].users else "",
        ]
        for mode, rows in sweep.rows.items()
        for n, row in zip(sweep.users, rows, strict=True)
    ]


def markers(axes, xs: list[float], ys: list[float], rows: list[Row], color: str, size: float = 6) -> None:
    """A marker per step: filled where the step measured the server, hollow where locust saturated
    or requests failed."""
    for x, y, row in zip(xs, ys, rows, strict=True):
        hollow = row.bound in UNTRUSTED
        axes.plot(x, y, "o", color=color, markersize=size, markerfacecolor="white" if hollow else color)


def draw(axes, sweep: Sweep, legend: bool = True) -> None:
    """Throughput against users, a line per mode: hollow markers where locust saturated (those steps
    measure locust), a star at the knee, "at least" beside it when it is a lower bound."""
    knees = sweep.knees
    for mode, rows in sweep.rows.items():
        color = COLORS.get(mode, "black")
        rps = [row.summary["rps"] for row in rows]
        axes.plot(sweep.users, rps, color=color, label=mode)
        markers(axes, sweep.users, rps, rows, color)
        k = knees[mode]
        if k.users:
            y = rows[sweep.users.index(k.users)].summary["rps"]
            axes.plot(k.users, y, "*", color=color, markersize=16, markeredgecolor="black")
            if not k.reached:  # a lower bound: locust saturated, or the steps ran out, first
                axes.annotate("at least", (k.users, y), textcoords="offset points", xytext=(9, 2), color=color,
                              fontsize=8)  # fmt: skip
    axes.set_xscale("log", base=2)
    axes.set_xticks(sweep.users, [str(n) for n in sweep.users])
    axes.margins(x=0.12)  # room for "at least" beside the last step
    axes.set_xlabel("users (no wait): offered load")
    axes.set_ylabel("requests/s")
    axes.set_ylim(bottom=0)
    if legend:
        axes.legend(title="★ knee  ○ locust saturated", fontsize=8, title_fontsize=8)


def chart(sweep: Sweep, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    draw(left, sweep)
    left.set_title("Throughput against offered load")
    for mode, rows in sweep.rows.items():
        color = COLORS.get(mode, "black")
        rps = [row.summary["rps"] for row in rows]
        p90 = [row.summary["p90_ms"] for row in rows]
        right.plot(rps, p90, "-", color=color, label=f"{mode} 90%")
        markers(right, rps, p90, rows, color)
        right.plot(rps, [row.summary["median_ms"] for row in rows], ":", color=color, label=f"{mode} median")
    right.set_title("Latency against throughput")
    right.set_xlabel("requests/s")
    right.set_ylabel("response time (ms)")
    right.set_yscale("log")
    from matplotlib.ticker import ScalarFormatter

    for axis_formatter in (right.yaxis.set_major_formatter, right.yaxis.set_minor_formatter):
        axis_formatter(ScalarFormatter())  # 30, 40, 60 ms rather than 3 x 10^1
    right.legend(fontsize=7)
    s = sweep.settings
    fig.suptitle(f"Capacity sweep: work {s.workload}, {s.run_time:g} s a step, {s.cores} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(sweep: Sweep, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / f"sweep.{kind}" for kind in ("md", "csv", "json", "png")}
    paths["md"].write_text(markdown(sweep))
    with open(paths["csv"], "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_rows(sweep))
    data = {
        "settings": asdict(sweep.settings),
        "users": sweep.users,
        "knees": {mode: asdict(k) for mode, k in sweep.knees.items()},
        "steps": {
            mode: [asdict(row) | {"users": n} for n, row in zip(sweep.users, rows, strict=True)]
            for mode, rows in sweep.rows.items()
        },
    }
    paths["json"].write_text(json.dumps(data, indent=2))
    chart(sweep, paths["png"])
    return paths


def cpu_lesson(sweeps: dict[str, Sweep]) -> str:
    """Whether the CPU-bound workload shows processes ahead of threads here, and if not, why."""
    cpu = sweeps.get("cpu")
    if not cpu or not {"multiprocess", "multithread"} <= set(cpu.rows):
        return ""
    knees = cpu.knees
    processes, threads = knees["multiprocess"].rps, knees["multithread"].rps
    ratio = processes / threads if threads else float("inf")
    cores = cpu.settings.cores
    if ratio >= 1.4:
        return (
            f"CPU-bound work: the process server serves {ratio:.1f}x the thread server: its children compute "
            f"on {cores} cores side by side, while the threads take turns under the GIL."
        )
    top = cpu.rows["multiprocess"][-1]
    return (
        f"CPU-bound work: the lesson does not show on this machine: the process server serves only {ratio:.1f}x "
        f"the thread server. It has {cores} core(s), and locust needs its share beside the server (at the last "
        f"step locust used {top.locust_cpu:.2f} of a core, the server {top.server_cpu:.2f}): processes need at "
        "least two cores free for the server to pull ahead. Run it on a machine with 4 cores or more, or run "
        "locust on another machine."
    )


def lesson_figure(sweeps: dict[str, Sweep], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, panels = plt.subplots(1, len(sweeps), figsize=(5 * len(sweeps), 4.4), squeeze=False)
    titles = {"none": "no work", "io": "20 ms of I/O (sleep)", "cpu": "20 ms of CPU"}
    for axes, (name, sweep) in zip(panels[0], sweeps.items(), strict=True):
        draw(axes, sweep, legend=axes is panels[0][0])
        axes.set_title(titles.get(name, name))
    cores = next(iter(sweeps.values())).settings.cores
    fig.suptitle(f"Three servers, three workloads: throughput as users are added ({cores} cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def lesson(sweeps: dict[str, Sweep], out: Path) -> dict[str, Path]:
    """The lesson's summary beside its three folders: lesson.md (every knee) and lesson.png."""
    paths = {"md": out / "lesson.md", "png": out / "lesson.png"}
    text = "The lesson: each mode's capacity under three workloads (`compare --preset lesson`).\n\n"
    for name, sweep in sweeps.items():
        text += f"{name} (work {sweep.settings.workload}; details in {name}/sweep.md):\n\n"
        text += "".join(f"- {k.describe()}\n" for k in sweep.knees.values()) + "\n"
    note = cpu_lesson(sweeps)
    paths["md"].write_text(text + (note + "\n" if note else ""))
    lesson_figure(sweeps, paths["png"])
    return paths
