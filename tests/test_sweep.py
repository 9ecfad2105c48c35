"""`compare --sweep`: each mode's capacity, found by stepping the load up; the knee; the lesson's verdict."""

import csv
import json
import subprocess
import sys

from test_compare import summary

from autograder import KIT, SOLUTION
from autograder.compare import Row, Settings
from autograder.sweep import CSV_COLUMNS, Sweep, cpu_lesson, knee

SWEEP = Settings(1, 1, 5, 0, 0, cores=2)  # users that never wait: no ceiling but the server's and locust's


def step(rps: float, locust_cpu: float = 0.3, server_cpu: float = 0.5, mode: str = "multithread") -> Row:
    return Row.measured(mode, summary(rps, 6, requests=int(rps * 5)), locust_cpu, server_cpu, 5, SWEEP)


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


def test_the_cpu_lesson_says_when_it_cannot_show_on_this_machine():
    def cpu_sweep(processes: float, threads: float) -> dict[str, Sweep]:
        rows = {"multiprocess": [step(processes, server_cpu=1.3, mode="multiprocess")]}
        rows["multithread"] = [step(threads, server_cpu=1.0)]
        return {"cpu": Sweep(SWEEP, [4], rows)}

    assert "the process server serves 1.8x the thread server" in cpu_lesson(cpu_sweep(90, 50))
    verdict = cpu_lesson(cpu_sweep(55, 50))
    assert "the lesson does not show on this machine" in verdict and "It has 2 core(s)" in verdict


def test_a_sweep_writes_a_csv_row_per_step_and_mode_a_json_and_a_chart(tmp_path):
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "autograder", "compare", str(SOLUTION), "--sweep", "--steps", "1", "4"]
    command += ["--step-time", "3s"]
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
    data = json.loads((out / "sweep.json").read_text())
    assert data["knees"]["single"]["bound"] == "server" and data["knees"]["multithread"]["users"] == 4
    assert sum(row["knee"] == "yes" for row in rows) == 2
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
