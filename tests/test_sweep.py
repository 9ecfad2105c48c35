"""`compare --sweep`: each mode's capacity, found by stepping the load up; the knee; the lesson's verdict."""

import csv
import itertools
import json
import subprocess
import sys
from dataclasses import replace

from test_compare import summary

from autograder import KIT, SOLUTION
from autograder.compare import Burst, Row, Served, Settings, combine, read_timeline, write_timeline
from autograder.sweep import CSV_COLUMNS, Sweep, cpu_lesson, knee, lesson, lesson_figure, lesson_plan, markdown

SWEEP = Settings(1, 1, 5, 0, 0, cores=2, gil=True)  # users that never wait: no ceiling but the server's and locust's


def step(rps: float, locust_cpu: float = 0.3, server_cpu: float = 0.5, mode: str = "multithread",
         others_cpu: float = 0.0, settings: Settings = SWEEP) -> Row:  # fmt: skip
    return Row.measured(mode, summary(rps, 6, requests=int(rps * 5)), locust_cpu, server_cpu, 5, settings,
                        others_cpu=others_cpu, cpus=2)  # fmt: skip


def runs(*rps: float) -> Row:
    """A step of several runs: their medians and spread."""
    return combine([step(r) for r in rps], SWEEP)


def test_the_knee_is_the_first_step_at_nine_tenths_of_the_best_measurable_one():
    rows = [step(100), step(190), step(380), step(400), step(405)]
    found = knee(rows, [1, 2, 4, 8, 16])
    assert (found.users, found.rps, found.reached) == (4, 405, True)
    assert "multithread: 405 requests/s from 4 users" in found.describe()


def test_a_knee_is_a_lower_bound_where_locust_saturated_above_it_or_throughput_still_grew():
    saturated = knee([step(300), step(350, locust_cpu=0.95)], [1, 2])
    assert (saturated.users, saturated.rps, saturated.reached) == (1, 300, False)
    assert "at least" in saturated.describe()
    growing = knee([step(100), step(200)], [1, 2])
    assert (growing.users, growing.reached) == (2, False)
    nothing = knee([step(900, locust_cpu=0.97), step(950, locust_cpu=0.99)], [1, 2])
    assert nothing.users == 0 and "no step could be measured" in nothing.describe()


def test_the_knee_is_found_on_medians_and_is_uncertain_where_the_runs_spread_across_the_rule():
    steady = knee([runs(100, 100, 101), runs(380, 390, 395), runs(400, 405, 410)], [1, 2, 4])
    assert (steady.users, steady.rps, steady.uncertain) == (2, 405, False)
    assert "runs 380-395" in steady.describe() and "uncertain" not in steady.describe()
    slow_run = knee([runs(100, 100, 101), runs(300, 390, 395), runs(400, 405, 410)], [1, 2, 4])
    assert (slow_run.users, slow_run.uncertain) == (2, True)  # its slowest run is under 90% of 405
    fast_run = knee([runs(100, 200, 380), runs(380, 390, 395), runs(400, 405, 410)], [1, 2, 4])
    assert (fast_run.users, fast_run.uncertain) == (2, True)  # a run of the step before reached it
    assert "uncertain: the runs' spread crosses 90% of the best" in fast_run.describe()


def cpu_sweep(processes: float, threads: float, settings: Settings = SWEEP, others: float = 0.0,
              locust: float = 0.3) -> dict[str, Sweep]:  # fmt: skip
    rows = {"multiprocess": [step(processes, locust, 1.3, "multiprocess", others, settings)]}
    rows["multithread"] = [step(threads, locust, 1.0, "multithread", others, settings)]
    return {"cpu": Sweep(settings, [4], rows)}


def test_the_cpu_lesson_says_what_it_measured_and_why():
    shown = cpu_lesson(cpu_sweep(90, 50))
    assert "the process server served 90 requests/s, the thread server 50 (1.8x)" in shown
    assert "take turns under the GIL" in shown
    starved = cpu_lesson(cpu_sweep(55, 50, locust=0.5))
    assert "the lesson does not show on this machine" in starved and "locust used 0.50 of a core" in starved
    assert "1.50 of the 2 cores were left for the server" in starved


def test_on_a_busy_machine_the_cpu_lesson_blames_the_machine_not_locust():
    verdict = cpu_lesson(cpu_sweep(48, 42, others=1.4, locust=0.09))
    assert "the machine was busy: other processes took up to 1.40 of its 2 CPUs at 2 of the 2 steps" in verdict
    assert "locust" not in verdict and "--require-quiet" in verdict
    busy = cpu_sweep(48, 42, others=1.4)["cpu"]
    text = markdown(busy)
    assert "| server CPU, machine busy (70%) |" in text and "Where the machine was busy:" in text
    assert "machine busy at 1 of 1 steps" in text


def test_without_the_gil_the_cpu_lesson_says_threads_were_not_held_to_one_core(tmp_path):
    """The recorded interpreter decides: a free-threaded build's threads compute on several cores too."""
    free = replace(SWEEP, python="CPython 3.14.0 (free-threaded build)", gil=False)
    verdict = cpu_lesson(cpu_sweep(80, 76, free))
    assert "without the GIL (CPython 3.14.0 (free-threaded build))" in verdict
    assert "threads are not behind processes here" in verdict and "take turns" not in verdict
    paths = lesson(cpu_sweep(80, 76, free), tmp_path)
    text = paths["md"].read_text()
    assert "Interpreter of the servers: CPython 3.14.0 (free-threaded build), GIL disabled" in text
    assert verdict in text and paths["png"].stat().st_size > 10_000


def burst(mode: str, kind: str, spans: list[tuple[float, float]], pids: list[int], threads: list[int]) -> Burst:
    """A burst whose request i a worker (pids[i], threads[i]) served from spans[i][0] to spans[i][1] s after
    the clients connected at once, its work the whole span."""
    served = []
    for i, ((began, ended), pid, thread) in enumerate(zip(spans, pids, threads, strict=True)):
        at = 1000.0  # the clients' connect()
        served.append(Served(mode, f"50 ms {kind}", i, 40000 + i, at, at + 0.001, at + ended, at + ended + 0.001,
                             accept=at + began - 0.001, accept_pid=pids[0] if mode == "multiprocess" else pid, pid=pid,
                             thread=thread, start=at + began, request=at + began, work=(at + began, at + ended),
                             close=at + ended))  # fmt: skip
    lanes: dict[tuple[int, int], int] = {}
    for request in served:
        request.lane = lanes.setdefault(request.worker, len(lanes))
    return Burst(mode, f"50 ms {kind}", served, 0.1, 2, "fork")


def bursts(clients: int = 4) -> list[Burst]:
    """The three servers under a burst of clients, io then cpu: a staircase, one process a request, threads."""
    found = []
    for kind in ("io", "cpu"):
        found.append(burst("single", kind, [(0.05 * i, 0.05 * (i + 1)) for i in range(clients)], [7] * clients,
                           [7] * clients))  # fmt: skip
        found.append(burst("multiprocess", kind, [(0.002 * i, 0.002 * i + 0.05) for i in range(clients)],
                           list(range(100, 100 + clients)), list(range(100, 100 + clients))))  # fmt: skip
        found.append(burst("multithread", kind, [(0.001, 0.05 * clients if kind == "cpu" else 0.051)] * clients,
                           [9] * clients, list(range(200, 200 + clients))))  # fmt: skip
    return found


def lesson_sweeps() -> dict[str, Sweep]:
    rows = {mode: [step(100, mode=mode), step(180, mode=mode)] for mode in ("single", "multiprocess", "multithread")}
    return {name: Sweep(SWEEP, [1, 2], rows) for name in ("none", "io", "cpu")}


def test_the_lesson_figure_draws_the_timeline_below_the_sweeps_a_panel_per_kind_of_work(tmp_path):
    """A panel per workload's sweep, then a panel per kind of work of the timeline, holding every mode's
    burst: one bar per request served, and a label per mode that says how many it served at once."""
    fig = lesson_figure(lesson_sweeps(), tmp_path / "lesson.png", bursts(4))
    *sweeps, io, cpu = fig.axes
    assert len(sweeps) == 3 and [a.get_title() for a in sweeps] == ["no work", "20 ms of I/O (sleep)", "20 ms of CPU"]
    assert io.get_title().startswith("50 ms io") and cpu.get_title().startswith("50 ms cpu")
    for panel in (io, cpu):
        served = [bar for bar in panel.patches if bar.get_gid() == "served"]
        assert len(served) == 3 * 4  # one bar per request, of the three modes
        labels = [label.get_text() for label in panel.get_yticklabels()]
        assert [label.split("\n")[0] for label in labels] == ["single", "multiprocess", "multithread"]
        assert "at most 1 at once" in labels[0] and "4 worker(s)" in labels[1] and "at most 4 at once" in labels[2]
        single = sorted((bar.get_y(), bar.get_x(), bar.get_x() + bar.get_width()) for bar in served)[:4]
        assert all(later[1] >= earlier[2] for earlier, later in itertools.pairwise(single)), single  # a staircase
    assert not any(bar.get_gid() == "served" for a in sweeps for bar in a.patches)

    import matplotlib.image

    pixels = matplotlib.image.imread(tmp_path / "lesson.png")
    assert pixels.shape[0] > 800 and pixels.shape[1] > 1200 and pixels.std() > 0.05


def test_the_lesson_reads_its_timeline_back_and_without_one_its_figure_is_the_sweeps_alone(tmp_path):
    measured = bursts(3)
    timeline = write_timeline(measured, SWEEP, tmp_path)
    assert read_timeline(timeline["json"]) == measured  # every time of every request, back as it was measured
    paths = lesson(lesson_sweeps(), tmp_path, timeline)
    text = paths["md"].read_text()
    assert "Each server at work (timeline.png and the foot of lesson.png, a row per request in timeline.csv)" in text
    assert "- single, 50 ms io: 3 clients served in 151 ms by 1 worker(s), at most 1 at once" in text
    assert paths["timeline json"] == timeline["json"] and paths["png"].stat().st_size > 10_000
    alone = lesson_figure(lesson_sweeps(), tmp_path / "alone.png")
    assert len(alone.axes) == 3 and not any(bar.get_gid() == "served" for a in alone.axes for bar in a.patches)


def test_the_lesson_fits_its_repeats_in_its_budget_by_shortening_the_steps():
    rounds = 3 * 3 * 6  # workloads, modes, steps
    assert lesson_plan(rounds, None, None, budget=480) == (3, 2)  # 162 runs of 2 s, with their overhead
    assert lesson_plan(rounds, None, None, budget=330) == (2, 2)  # 3 would need steps under 2 s
    assert lesson_plan(rounds, None, None, budget=300) == (1, 4)  # ... and 2 too: one run, of 4 s
    assert lesson_plan(rounds, None, None, budget=3000) == (3, 5)  # never longer than 5 s a step
    assert lesson_plan(rounds, 5, None, budget=300) == (5, 2)  # repeats asked for are kept
    assert lesson_plan(rounds, None, 4, budget=480) == (1, 4)  # ... and so is a step time
    assert lesson_plan(3, None, None, budget=480) == (3, 5)  # the kit's tests: one mode, one step


def test_a_sweep_writes_a_csv_row_per_step_and_mode_with_the_spread_a_json_and_a_chart(tmp_path):
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "autograder", "compare", str(SOLUTION), "--sweep", "--steps", "1", "4"]
    command += ["--step-time", "2s", "--repeat", "2"]
    command += ["--modes", "single", "multithread", "--work-ms", "50", "--out", out]
    done = subprocess.run(
        command,
        cwd=KIT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = list(csv.DictReader((out / "sweep.csv").read_text().splitlines()))
    assert list(rows[0]) == CSV_COLUMNS
    assert [(row["mode"], row["users"]) for row in rows] == [
        ("single", "1"), ("single", "4"), ("multithread", "1"), ("multithread", "4"),
    ]  # fmt: skip
    rps = {(row["mode"], row["users"]): float(row["rps"]) for row in rows}
    assert rps["single", "4"] <= 21  # 50 ms each, one at a time: at most 20 a second, however many users
    assert rps["multithread", "4"] > 2 * rps["single", "4"]  # the threads' waits overlap
    assert all(row["runs"] == "2" for row in rows)
    assert all(float(row["rps_min"]) <= float(row["rps"]) <= float(row["rps_max"]) for row in rows)
    assert all(float(row["p90_min_ms"]) <= float(row["p90_ms"]) <= float(row["p90_max_ms"]) for row in rows)
    data = json.loads((out / "sweep.json").read_text())
    assert data["knees"]["single"]["bound"] == "server" and data["knees"]["multithread"]["users"] == 4
    assert data["repeat"] == 2 and data["interpreter"]["python"].startswith("CPython")
    for steps in data["steps"].values():
        for found in steps:
            assert len(found["runs"]) == 2 and found["spread"]["rps"][0] <= found["summary"]["rps"]
            assert sorted(run["rps"] for run in found["runs"]) == found["spread"]["rps"]
    assert sum(row["knee"] in ("yes", "uncertain") for row in rows) == 2
    assert "Capacity" in done.stdout and f"wrote {out / 'sweep.png'}" in done.stdout

    import matplotlib.image

    pixels = matplotlib.image.imread(out / "sweep.png")
    assert pixels.shape[0] > 300 and pixels.shape[1] > 600 and pixels.std() > 0.05


def test_sweep_options_without_a_sweep_are_refused(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "autograder", "compare", str(SOLUTION), "--steps", "1", "2", "--out", tmp_path],
        cwd=KIT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "--steps and --step-time need --sweep" in done.stderr
