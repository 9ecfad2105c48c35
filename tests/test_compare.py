"""`python -m autograder compare`, end to end on tiny settings: servers and locust run for real."""

import csv
import json
import subprocess
import sys

import pytest

from autograder import KIT
from autograder.compare import Row, Settings, markdown, parse_duration


def compare(tmp_path, *options: str) -> dict:
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "autograder", "compare", "--out", out, *options],
        cwd=KIT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return {"stdout": run.stdout, "out": out, **json.loads((out / "compare.json").read_text())}


def test_compare_writes_the_table_the_csv_and_a_chart_for_the_three_modes(tmp_path):
    result = compare(tmp_path, "--users", "10", "--spawn-rate", "10", "--run-time", "3s", "--modes", "all")
    out = result["out"]
    table = (out / "compare.md").read_text()
    for column in ("Type", "Name", "# Requests", "# Fails", "Median", "90%ile", "Average", "Min", "Max"):
        assert f"| {column} |" in table
    for column in ("Average size", "RPS", "Failures/s", "Locust CPU"):
        assert f"| {column} |" in table
    rows = list(csv.DictReader((out / "compare.csv").read_text().splitlines()))
    assert [row["Server"] for row in rows] == ["single", "multiprocess", "multithread", "threadpool", "eventloop"]
    assert all(int(row["# Requests"]) > 50 and row["# Fails"] == "0" for row in rows)
    assert "client timeout 10 s" in table and "--reset-stats" in table
    assert all(0 < row["locust_cpu"] < 1.5 for row in result["rows"])

    import matplotlib.image

    pixels = matplotlib.image.imread(out / "compare.png")
    assert pixels.shape[0] > 300 and pixels.shape[1] > 600
    assert pixels.std() > 0.05, "the chart is blank"


def test_with_io_bound_work_the_thread_server_serves_a_multiple_of_the_single_server(tmp_path):
    result = compare(
        tmp_path, "--users", "20", "--spawn-rate", "20", "--run-time", "4s", "--modes", "single", "multithread",
        "--work-ms", "20", "--work-kind", "io",
    )  # fmt: skip
    rps = {row["mode"]: row["summary"]["rps"] for row in result["rows"]}
    assert rps["single"] <= 55  # 20 ms of work each, one at a time
    assert rps["multithread"] >= 2 * rps["single"], rps


def test_a_saturated_load_generator_and_failures_are_flagged_in_the_table():
    summary = {"requests": 10, "failures": 2, "median_ms": 5, "p90_ms": 9, "average_ms": 6, "min_ms": 1}
    summary |= {"max_ms": 20, "average_size": 150, "rps": 100.0, "failures_per_s": 0.5}
    summary |= {"errors": {"ConnectionResetError(104, 'Connection reset by peer')": 2}}
    rows = [
        Row("single", summary, locust_cpu=0.97, server_cpu=0.2, seconds=3),
        Row("multithread", summary, 0.4, 0.1, 3),
    ]
    table = markdown(rows, Settings(10, 10, 3, 0.05, 0.1), [])
    assert "| single | GET | / | 10 | 2 |" in table and "97% ⚠" in table and "40%" in table
    assert "single: locust used 97% of a core: this row measures locust, not the server" in table
    assert "multithread: locust used" not in table
    assert "single: 2 failures: 2 x ConnectionResetError" in table


@pytest.mark.parametrize(("text", "seconds"), [("20", 20), ("20s", 20), ("2m", 120), ("1.5h", 5400)])
def test_run_time_accepts_locust_style_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--run-time", "soon"], "not a duration"),
        (["--users", "-3"], "--users must be positive"),
        (["--min-wait", "2", "--max-wait", "1"], "--min-wait <= --max-wait"),
    ],
)
def test_bad_settings_are_refused_before_anything_starts(tmp_path, options, message):
    run = subprocess.run(
        [sys.executable, "-m", "autograder", "compare", "--out", tmp_path, *options],
        cwd=KIT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr


def test_a_server_that_does_not_start_is_a_clear_error_not_a_traceback(tmp_path):
    from conftest import mutant

    broken = mutant(tmp_path / "sub", "single_server.py", "    run(serve, __doc__)\n", "    raise SystemExit(3)\n")
    run = subprocess.run(
        [sys.executable, "-m", "autograder", "compare", broken, "--modes", "single", "--out", tmp_path / "out"],
        cwd=KIT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1 and "single_server.py did not start: it exited with status 3" in run.stderr
    assert "Traceback" not in run.stderr
