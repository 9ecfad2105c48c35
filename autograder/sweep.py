"""`python -m autograder compare --sweep`: each mode's capacity, found by stepping the load up.

A closed loop of N users that never wait offers as much load as N clients can: each asks again as
soon as it has its reply. For each mode, one server is started and locust runs `--repeat` times per
step (1, 2, 4, ... users; the repeats in rounds over the steps, so that a change of the machine's load
spreads over every step), each run measured as `compare` measures a row (steady window, CPU of locust,
of the server and of the rest of the machine, what bounded it). A step holds the medians of its runs and
their spread. The knee is the first step whose median reaches 90% of the most the mode served at a step
locust could measure: past it, more users only wait longer; it is uncertain when the spread of the runs
crosses that rule. `--preset lesson` sweeps three workloads (none, 20 ms of I/O, 20 ms of CPU) into
folders of their own within a time budget (steps shortened to fit the repeats), and a timeline of each
server at work; its figure has a panel per workload, and below them a panel per kind of work of the timeline.
"""

import csv
import json
import math
import tempfile
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path

from autograder.compare import (
    COLORS,
    FAILURES,
    LOCUST,
    Burst,
    Look,
    Row,
    Settings,
    check_submission,
    combine,
    draw_timeline,
    interpreter,
    measure,
    read_timeline,
    start,
    timeline_legend,
)

STEPS = (1, 2, 4, 8, 16, 32)  # users per step
STEP_TIME = 3.0  # seconds per run of a step, the spawn included (the figures leave it out)
REPEAT = 3  # runs per step, by default
KNEE = 0.9  # the knee: the first step at this share of the mode's best measurable throughput
GROWING = 1.1  # a last step still this much above the one before: capacity not reached yet
WORKLOADS = {"none": (0.0, "io"), "io": (20.0, "io"), "cpu": (20.0, "cpu")}  # --preset lesson: folder -> work
UNTRUSTED = (LOCUST, FAILURES)  # steps that say nothing of the server's capacity
LESSON_BUDGET = 480.0  # seconds the lesson's runs may take together, about
LESSON_STEP_TIME = 5.0  # seconds per run of the lesson's steps, at most
MIN_STEP_TIME = 2.0  # ... at least: locust's steady window needs a second or two
RUN_OVERHEAD = 0.8  # seconds a locust run takes beyond its run time (start-up and stop), measured here
CSV_COLUMNS = [
    "mode", "users", "runs", "requests", "failures", "rps", "rps_min", "rps_max", "median_ms", "p90_ms",
    "p90_min_ms", "p90_max_ms", "locust_cpu", "server_cpu", "server_cpu_ms", "others_cpu", "bound", "machine",
    "knee",
]  # fmt: skip


@dataclass
class Knee:
    mode: str
    users: int  # at the knee; 0 when no step could be measured
    rps: float  # the capacity: the most served at a measurable step
    p90_ms: float
    bound: str  # what bounded the best step: what sets the capacity
    reached: bool  # False: throughput still grew at the last step, or locust saturated first (a lower bound)
    uncertain: bool = False  # the runs' spread crosses the knee rule: another step could be the knee
    low: float = 0.0  # the spread of the knee step's runs (requests/s)
    high: float = 0.0
    busy_steps: int = 0  # steps of this mode in which the machine was busy (other processes)
    steps: int = 0
    others_max: float = 0.0  # the most CPUs other processes took in a run of this mode
    cpus: int = 0

    def describe(self) -> str:
        busy = (
            f"; machine busy at {self.busy_steps} of {self.steps} steps (other processes took up to "
            f"{self.others_max:.2f} of {self.cpus} CPUs)"
            if self.busy_steps
            else ""
        )
        if not self.users:
            return f"{self.mode}: no step could be measured (locust saturated or requests failed at every step){busy}"
        users = f"{self.users} user" + ("s" if self.users > 1 else "")
        runs = f"runs {figure(self.low)}-{figure(self.high)}; " if self.high > self.low else ""
        text = f"{self.mode}: {self.rps:.0f} requests/s from {users} ({runs}90% in {self.p90_ms:.0f} ms)"
        text += f", bound by {self.bound}" if self.reached else ", at least: locust or the steps ran out first"
        if self.uncertain:
            text += f"; uncertain: the runs' spread crosses {KNEE:.0%} of the best"
        return text + busy


def knee(rows: list[Row], users: list[int]) -> Knee:
    """The knee of one mode's steps (rows in the order of users), found on their medians; uncertain when
    the spread of the runs crosses the rule: the knee step's slowest run is under KNEE of the best, or a
    step before it had a run that reached it."""
    mode = rows[0].mode
    busy = {"busy_steps": sum(row.machine_busy for row in rows), "steps": len(rows), "cpus": rows[0].cpus,
            "others_max": max(row.others_max for row in rows)}  # fmt: skip
    trusted = [(n, row) for n, row in zip(users, rows, strict=True) if row.bound not in UNTRUSTED]
    if not trusted:
        best = max(rows, key=lambda row: row.summary["rps"])
        return Knee(mode, 0, best.summary["rps"], best.summary["p90_ms"], best.bound, False, **busy)
    top = max((row for _, row in trusted), key=lambda row: row.summary["rps"])
    best = top.summary["rps"]
    threshold = KNEE * best
    i, (n, row) = next((i, (n, row)) for i, (n, row) in enumerate(trusted) if row.summary["rps"] >= threshold)
    low, high = rps_spread(row)
    uncertain = low < threshold or any(rps_spread(before)[1] >= threshold for _, before in trusted[:i])
    last = users.index(trusted[-1][0])
    growing = last > 0 and rows[last].summary["rps"] > GROWING * rows[last - 1].summary["rps"]
    saturated_above = any(r.summary["rps"] > best for r in rows if r.bound == LOCUST)
    reached = not (n == trusted[-1][0] and growing) and not saturated_above
    return Knee(mode, n, best, row.summary["p90_ms"], top.bound, reached, uncertain, low, high, **busy)


def figure(value: float) -> str:
    """A throughput to read: one decimal under 100, none above."""
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def rps_spread(row: Row) -> tuple[float, float]:
    rps = row.summary["rps"]
    low, high = row.spread.get("rps", (rps, rps))
    return low, high


@dataclass
class Sweep:
    settings: Settings  # of the first step; users, spawn rate and run time change per step
    users: list[int]
    rows: dict[str, list[Row]]  # mode -> its steps, each the medians of its runs
    repeat: int = 1  # runs per step
    before: Look | None = None  # the look at the machine before the sweep
    notes: list[str] = field(default_factory=list)

    @cached_property
    def knees(self) -> dict[str, Knee]:  # the rows do not change once measured
        return {mode: knee(rows, self.users) for mode, rows in self.rows.items()}


def step_settings(settings: Settings, users: int, step_time: float) -> Settings:
    return replace(settings, users=users, spawn_rate=users, run_time=step_time, min_wait=0.0, max_wait=0.0)


def run(submission: Path, modes: list[str], settings: Settings, users: list[int], step_time: float,
        repeat: int = 1, meter=None, label: str = "", before: Look | None = None) -> Sweep:  # fmt: skip
    """Sweep each mode: one server per mode, repeat locust runs per step, in rounds over the steps."""
    check_submission(submission, modes)
    settings = replace(settings)
    settings.python, settings.gil = interpreter()
    rows: dict[str, list[Row]] = {}
    with tempfile.TemporaryDirectory(prefix="concurrency-lab-sweep-") as tmp:
        for mode in modes:
            server = start(submission, mode, settings, Path(tmp))
            runs: dict[int, list[Row]] = {n: [] for n in users}
            try:
                for r in range(repeat):
                    for n in users:
                        if meter:
                            round_ = f", run {r + 1} of {repeat}" if repeat > 1 else ""
                            meter.begin(f"{label}{mode}, {n} user{'s' if n > 1 else ''}{round_}")
                        step = step_settings(settings, n, step_time)
                        tick = meter.tick if meter else None
                        runs[n].append(measure(server, mode, step, Path(tmp), f"{mode}-{n}-{r}", tick))
                        if meter:
                            meter.end()
            finally:
                server.kill()
            rows[mode] = [combine(runs[n], step_settings(settings, n, step_time)) for n in users]
    notes = [before.describe()] if before else []
    return Sweep(step_settings(settings, users[0], step_time), users, rows, repeat, before, notes)


def lesson_plan(runs_per_round: int, repeat: int | None, step_time: float | None,
                budget: float = LESSON_BUDGET) -> tuple[int, float]:  # fmt: skip
    """(runs per step, seconds per run) for the lesson: what is given is kept; the repeats (REPEAT unless
    given) fit the budget by shortening the steps (whole seconds, from LESSON_STEP_TIME down to MIN_STEP_TIME);
    where even the shortest steps do not fit, fewer repeats (one at least)."""
    if repeat and step_time:
        return repeat, step_time

    def fits(r: int) -> float:  # the longest step time at which r runs a step fit the budget
        return math.floor(budget / (runs_per_round * r) - RUN_OVERHEAD)

    if step_time:  # the most repeats, up to REPEAT, that fit at this step time
        return next((r for r in range(REPEAT, 0, -1) if fits(r) >= step_time), 1), step_time
    for r in range(repeat or REPEAT, 0, -1):
        if fits(r) >= MIN_STEP_TIME or repeat:
            return r, max(MIN_STEP_TIME, min(LESSON_STEP_TIME, fits(r)))
    return 1, MIN_STEP_TIME


def markdown(sweep: Sweep) -> str:
    s = sweep.settings
    runs = f"{sweep.repeat} runs of {s.run_time:g} s a step (a step holds their medians)" if sweep.repeat > 1 else (
        f"{s.run_time:g} s a step")  # fmt: skip
    text = (
        f"Capacity sweep: users that never wait, {', '.join(map(str, sweep.users))} of them in turn, "
        f"{runs}; the figures leave the spawn out; work per request: {s.workload}; "
        f"{s.cores:g} cores; {s.processes} locust process(es); start method {s.start_method}; client timeout "
        f"{s.request_timeout:g} s; ulimit -n {s.open_files}; interpreter of the servers: {s.interpreter}.\n\n"
    )
    text += "".join(f"{note[0].upper()}{note[1:]}.\n\n" for note in sweep.notes)
    text += "Capacity (the knee: the first step at 90% of the most a step served that locust could measure):\n\n"
    text += "".join(f"- {k.describe()}\n" for k in sweep.knees.values())
    header = ["users", "RPS", "RPS min-max", "Median", "90%ile", "# Fails", "Locust CPU", "Server CPU", "Other CPU",
              "CPU ms/req", "Bound by"]  # fmt: skip
    for mode, rows in sweep.rows.items():
        k = sweep.knees[mode]
        text += f"\n{mode}:\n\n| " + " | ".join(header) + " |\n|" + " ---: |" * (len(header) - 1) + " --- |\n"
        for n, row in zip(sweep.users, rows, strict=True):
            r = row.summary
            mark = (" (knee?)" if k.uncertain else " (knee)") if n == k.users else ""
            low, high = rps_spread(row)
            text += (
                f"| {n}{mark} | {r['rps']:.1f} | {figure(low)}-{figure(high)} | {r['median_ms']:.0f} | "
                f"{r['p90_ms']:.0f} | {r['failures']} | {row.locust_cpu:.0%} | {row.server_cpu:.0%} | "
                f"{row.others_cpu:.0%} | {row.server_cpu_ms:.2f} | {row.label} |\n"
            )
    busy = [f"- {mode}, {n} user{'s' if n > 1 else ''}: {row.machine}" for mode, rows in sweep.rows.items()
            for n, row in zip(sweep.users, rows, strict=True) if row.machine_busy]  # fmt: skip
    if busy:
        text += "\nWhere the machine was busy:\n\n" + "\n".join(busy) + "\n"
    return text


def csv_rows(sweep: Sweep) -> list[list]:
    knees = sweep.knees
    return [
        [
            mode,
            n,
            row.repeats,
            row.summary["requests"],
            row.summary["failures"],
            round(row.summary["rps"], 2),
            round(rps_spread(row)[0], 2),
            round(rps_spread(row)[1], 2),
            row.summary["median_ms"],
            row.summary["p90_ms"],
            *row.spread.get("p90_ms", [row.summary["p90_ms"]] * 2),
            round(row.locust_cpu, 3),
            round(row.server_cpu, 3),
            round(row.server_cpu_ms, 3),
            round(row.others_cpu, 3),
            row.bound,
            f"busy {row.others_max / row.cpus:.0%}" if row.machine_busy else "",
            ("uncertain" if knees[mode].uncertain else "yes") if n == knees[mode].users else "",
        ]
        for mode, rows in sweep.rows.items()
        for n, row in zip(sweep.users, rows, strict=True)
    ]


def markers(axes, xs: list[float], ys: list[float], rows: list[Row], color: str, size: float = 6) -> None:
    """A marker per step: filled where the step measured the server, hollow where locust saturated
    or requests failed; a red ring where the machine was busy (other processes)."""
    for x, y, row in zip(xs, ys, rows, strict=True):
        hollow = row.bound in UNTRUSTED
        axes.plot(x, y, "o", color=color, markersize=size, markerfacecolor="white" if hollow else color)
        if row.machine_busy:
            axes.plot(x, y, "o", markersize=size + 5, markerfacecolor="none", markeredgecolor="#c44e52")


def spread_bars(axes, xs: list[float], rows: list[Row], key: str, color: str, horizontal: list[Row] | None = None):
    """The runs' spread (min to max) around each median: vertical bars of key; horizontal ones of the
    throughput too where horizontal (the rows again) is given."""
    ys = [row.summary[key] for row in rows]
    yerr = [[y - row.spread.get(key, [y, y])[0] for y, row in zip(ys, rows, strict=True)],
            [row.spread.get(key, [y, y])[1] - y for y, row in zip(ys, rows, strict=True)]]  # fmt: skip
    xerr = None
    if horizontal:
        xerr = [[x - rps_spread(row)[0] for x, row in zip(xs, horizontal, strict=True)],
                [rps_spread(row)[1] - x for x, row in zip(xs, horizontal, strict=True)]]  # fmt: skip
    axes.errorbar(xs, ys, yerr=yerr, xerr=xerr, fmt="none", ecolor=color, elinewidth=1, capsize=3, alpha=0.7)


LEGEND = "★ knee (☆ uncertain)  ○ locust saturated\nred ring: machine busy; bars: runs' min-max"


def draw(axes, sweep: Sweep, legend: bool = True) -> None:
    """Throughput against users, a line per mode through the medians, the runs' spread as bars: hollow
    markers where locust saturated (those steps measure locust), a red ring where the machine was busy, a
    star at the knee (hollow when uncertain), "at least" beside it when it is a lower bound."""
    knees = sweep.knees
    for mode, rows in sweep.rows.items():
        color = COLORS.get(mode, "black")
        rps = [row.summary["rps"] for row in rows]
        axes.plot(sweep.users, rps, color=color, label=mode)
        spread_bars(axes, sweep.users, rows, "rps", color)
        markers(axes, sweep.users, rps, rows, color)
        k = knees[mode]
        if k.users:
            y = rows[sweep.users.index(k.users)].summary["rps"]
            face = "white" if k.uncertain else color
            axes.plot(k.users, y, "*", color=color, markersize=16, markeredgecolor="black", markerfacecolor=face)
            notes = ([] if k.reached else ["at least"]) + (["uncertain"] if k.uncertain else [])
            if notes:  # a lower bound (locust saturated, or the steps ran out, first); runs spread across the rule
                axes.annotate(", ".join(notes), (k.users, y), textcoords="offset points", xytext=(9, 2), color=color,
                              fontsize=8)  # fmt: skip
    axes.set_xscale("log", base=2)
    axes.set_xticks(sweep.users, [str(n) for n in sweep.users])
    axes.margins(x=0.12)  # room for "at least" beside the last step
    axes.set_xlabel("users (no wait): offered load")
    axes.set_ylabel("requests/s")
    axes.set_ylim(bottom=0)
    if legend:
        axes.legend(title=LEGEND, fontsize=8, title_fontsize=7)


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
        spread_bars(right, rps, rows, "p90_ms", color, horizontal=rows)
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
    runs = (
        f"median of {sweep.repeat} runs of {s.run_time:g} s a step" if sweep.repeat > 1 else f"{s.run_time:g} s a step"
    )
    fig.suptitle(f"Capacity sweep: work {s.workload}, {runs}, {s.cores:g} cores, {s.interpreter.split(':')[0]}")
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
        "interpreter": {"python": sweep.settings.python, "gil": sweep.settings.gil},
        "machine": (asdict(sweep.before) | {"quiet": sweep.before.quiet}) if sweep.before else None,
        "repeat": sweep.repeat,
        "users": sweep.users,
        "knees": {mode: asdict(k) for mode, k in sweep.knees.items()},
        "steps": {
            mode: [
                asdict(row) | {"users": n, "machine_busy": row.machine_busy}
                for n, row in zip(sweep.users, rows, strict=True)
            ]
            for mode, rows in sweep.rows.items()
        },
    }
    paths["json"].write_text(json.dumps(data, indent=2))
    chart(sweep, paths["png"])
    return paths


AHEAD = 1.4  # the process server serving this many times the thread server on CPU work: the lesson shows


def cpu_lesson(sweeps: dict[str, Sweep]) -> str:
    """What the CPU-bound workload showed of processes against threads here, and why: from the interpreter
    that ran the servers (the GIL enabled or not), the machine (busy with other processes or not), and the
    CPU that locust, the server and the rest of the machine took at the top step."""
    cpu = sweeps.get("cpu")
    if not cpu or not {"multiprocess", "multithread"} <= set(cpu.rows):
        return ""
    knees = cpu.knees
    processes, threads = knees["multiprocess"].rps, knees["multithread"].rps
    ratio = processes / threads if threads else float("inf")
    s = cpu.settings
    measured = f"the process server served {processes:.0f} requests/s, the thread server {threads:.0f} ({ratio:.1f}x)"
    steps = [row for mode in ("multiprocess", "multithread") for row in cpu.rows[mode]]
    busy = [row for row in steps if row.machine_busy]
    if busy:
        most = max(row.others_max for row in busy)
        return (
            f"CPU-bound work: the machine was busy: other processes took up to {most:.2f} of its {busy[0].cpus} "
            f"CPUs at {len(busy)} of the {len(steps)} steps of the process and thread servers, so the figures "
            f"measure that other work as much as the servers ({measured}). Run the lesson again on a quiet machine "
            "(`--require-quiet` refuses to measure on a busy one)."
        )
    top = cpu.rows["multiprocess"][-1]
    free = s.cores - top.locust_cpu * s.processes - top.others_cpu
    if not s.gil:
        verdict = (
            "threads are not behind processes here, as they are under the GIL"
            if ratio < AHEAD
            else "processes are still ahead, and not because of the GIL: compare each server's CPU in cpu/sweep.md"
        )
        return (
            f"CPU-bound work, on an interpreter without the GIL ({s.python}): the thread server's threads can "
            f"compute on {s.cores:g} cores side by side, as the process server's children do. Measured: {measured}: "
            f"{verdict}."
        )
    if ratio >= AHEAD:
        return (
            f"CPU-bound work: {measured}: its children compute on {s.cores:g} cores side by side, while the "
            f"threads take turns under the GIL ({s.python})."
        )
    share = (
        f"at the last step locust used {top.locust_cpu * s.processes:.2f} of a core and other processes "
        f"{top.others_cpu:.2f}, so {max(free, 0):.2f} of the {s.cores:g} cores were left for the server"
    )
    if free < 2 * 0.9:
        return (
            f"CPU-bound work: the lesson does not show on this machine: {measured}. Processes need two cores or "
            f"more free for the server to pull ahead of threads under the GIL, and {share}. Run it on a machine "
            "with 4 cores or more, or run locust on another machine."
        )
    return (
        f"CPU-bound work: the lesson does not show here: {measured}; {share}, and the process server used "
        f"{top.server_cpu:.2f} of them (bound by {top.bound}: {top.why})."
    )


TITLES = {"none": "no work", "io": "20 ms of I/O (sleep)", "cpu": "20 ms of CPU"}  # the lesson's workloads


def sweep_panels(fig, sweeps: dict[str, Sweep], loc: str = "lower center") -> None:
    """The lesson's sweeps on fig (a figure, or a part of one): a panel per workload, one legend below (at loc)."""
    panels = fig.subplots(1, len(sweeps), squeeze=False)
    for axes, (name, sweep) in zip(panels[0], sweeps.items(), strict=True):
        draw(axes, sweep, legend=False)
        axes.set_title(TITLES.get(name, name))
    handles, labels = panels[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc=loc, ncol=len(labels) + 1, fontsize=8, frameon=False,
               title=LEGEND.replace("\n", "; "), title_fontsize=8)  # fmt: skip
    first = next(iter(sweeps.values()))
    runs = f", median of {first.repeat} runs a step" if first.repeat > 1 else ""
    fig.suptitle(f"Three servers, three workloads: throughput as users are added ({first.settings.cores:g} cores"
                 f"{runs}; {first.settings.interpreter.split(':')[0]})")  # fmt: skip


def timeline_panels(fig, bursts: list[Burst]) -> None:
    """The lesson's timeline on fig (a part of a figure): a panel per kind of work, every mode's burst in it,
    one below the other (compare.draw_timeline), the marks' legend below."""
    works = list(dict.fromkeys(b.workload for b in bursts))
    panels = fig.subplots(1, len(works), squeeze=False)
    for axes, work in zip(panels[0], works, strict=True):
        draw_timeline(axes, [b for b in bursts if b.workload == work], lanes=False)
        axes.set_title(f"{work} per request: a row per request", fontsize=10)
        axes.set_xlabel("ms since the burst's first client called connect()")
    fig.legend(handles=timeline_legend(), loc="outside lower center", ncol=6, fontsize=8, frameon=False)
    clients = max(len(b.served) for b in bursts)
    fig.suptitle(f"Each server at work: {clients} clients at once (timeline.png has a lane per worker)")


def lesson_figure(sweeps: dict[str, Sweep], path: Path, bursts: list[Burst] | None = None):
    """lesson.png: the sweeps, a panel per workload; below them, where the lesson measured a timeline (bursts),
    a panel per kind of work with each server at work. The figure, once written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 5 * len(sweeps)
    if not bursts:
        fig = plt.figure(figsize=(width, 4.4))
        sweep_panels(fig, sweeps)
        fig.tight_layout(rect=(0, 0.1, 1, 1))
    else:
        rows = max(sum(len(b.served) for b in bursts if b.workload == work) for work in {b.workload for b in bursts})
        height = 0.12 * rows + 2.0  # a timeline row: a row per request of the tallest panel, titles and legend
        fig = plt.figure(figsize=(max(width, 12), 4.9 + height), layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[4.9, height], hspace=0.02)
        sweep_panels(top, sweeps, "outside lower center")  # below the panels, in the room the layout leaves
        timeline_panels(bottom, bursts)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig


def lesson(sweeps: dict[str, Sweep], out: Path, timeline: dict[str, Path] | None = None) -> dict[str, Path]:
    """The lesson's summary beside its three folders: lesson.md (every knee, the interpreter, the machine,
    the CPU lesson, the timeline's lines) and lesson.png (the sweeps, and below them the timeline that
    compare.write_timeline() wrote: the paths it returned)."""
    paths = {"md": out / "lesson.md", "png": out / "lesson.png"}
    first = next(iter(sweeps.values()))
    s = first.settings
    text = "The lesson: each mode's capacity under three workloads (`compare --preset lesson`).\n\n"
    text += f"Interpreter of the servers: {s.interpreter}. {first.repeat} run(s) of {s.run_time:g} s a step.\n"
    text += "".join(f"{note[0].upper()}{note[1:]}.\n" for note in first.notes) + "\n"
    for name, sweep in sweeps.items():
        text += f"{name} (work {sweep.settings.workload}; details in {name}/sweep.md):\n\n"
        text += "".join(f"- {k.describe()}\n" for k in sweep.knees.values()) + "\n"
    note = cpu_lesson(sweeps)
    text += note + "\n" if note else ""
    if timeline:
        lines = timeline["md"].read_text().split("\n\n", 1)[-1]
        drawn = timeline["png"].name + (f" and the foot of {paths['png'].name}" if "json" in timeline else "")
        text += f"\nEach server at work ({drawn}, a row per request in {timeline['csv'].name}):\n\n"
        text += lines
        paths |= {f"timeline {kind}": path for kind, path in timeline.items()}
    paths["md"].write_text(text)
    bursts = read_timeline(timeline["json"]) if timeline and "json" in timeline else None
    lesson_figure(sweeps, paths["png"], bursts)
    return paths
