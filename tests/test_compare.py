"""`python -m autograder compare`, end to end on tiny settings: servers and locust run for real."""

import csv
import json
import subprocess
import sys

import pytest

from autograder import KIT, SOLUTION
from autograder.compare import (
    CORES,
    FAILURES,
    LOCUST,
    SERVER,
    SERVER_CPU,
    WAIT,
    Row,
    Settings,
    markdown,
    parse_duration,
)


def compare(tmp_path, *options: str) -> dict:
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "autograder", "compare", str(SOLUTION), "--out", out, *options],
        cwd=KIT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return {"stdout": run.stdout, "out": out, **json.loads((out / "compare.json").read_text())}


def test_compare_writes_the_table_the_csv_and_a_chart_for_the_three_modes(tmp_path):
    result = compare(tmp_path, "--users", "10", "--spawn-rate", "10", "--run-time", "2s")  # the handout runs all five
    out = result["out"]
    table = (out / "compare.md").read_text()
    for column in ("Type", "Name", "# Requests", "# Fails", "Median", "90%ile", "Average", "Min", "Max"):
        assert f"| {column} |" in table
    for column in ("Average size", "RPS", "Failures/s", "Locust CPU"):
        assert f"| {column} |" in table
    rows = list(csv.DictReader((out / "compare.csv").read_text().splitlines()))
    assert [row["Server"] for row in rows] == ["single", "multiprocess", "multithread"]
    assert all(int(row["# Requests"]) > 30 and row["# Fails"] == "0" for row in rows)
    assert "client timeout: 10 s" in table and "--reset-stats" in table
    assert all(row["bound"] and row["server_cpu_ms"] > 0 for row in result["rows"])
    assert all(0 < row["locust_cpu"] < 1.5 for row in result["rows"])

    import matplotlib.image

    pixels = matplotlib.image.imread(out / "compare.png")
    assert pixels.shape[0] > 300 and pixels.shape[1] > 600
    assert pixels.std() > 0.05, "the chart is blank"


def summary(rps: float, average_ms: float, requests: int = 1000, failures: int = 0) -> dict:
    """Figures as the locustfile writes them."""
    figures = {"requests": requests, "failures": failures, "median_ms": average_ms, "p90_ms": 2 * average_ms}
    figures |= {"average_ms": average_ms, "min_ms": 1, "max_ms": 3 * average_ms, "average_size": 150}
    figures |= {"rps": rps, "failures_per_s": failures / 10, "errors": {}}
    if failures:
        figures["errors"] = {"ConnectionResetError(104, 'Connection reset by peer')": failures}
    return figures


QUICK = Settings(100, 100, 20, 0.05, 0.1, cores=2)  # the quick preset: ceiling 100 / 0.075 s = 1333 requests/s


@pytest.mark.parametrize(
    ("figures", "locust_cpu", "server_cpu", "bound", "because"),
    [
        (summary(1000, 20), 0.97, 0.2, LOCUST, "locust used 97% of a core: it measures itself"),
        (summary(700, 50), 0.8, 0.2, LOCUST, "most of each request's time is spent in locust"),
        (summary(900, 5, failures=50), 0.5, 0.3, FAILURES, "5% of the requests failed (50 x ConnectionReset"),
        (summary(1300, 1), 0.6, 0.2, WAIT, "1300 requests/s is 98% of the ceiling N / Z = 100 / 0.075 s = 1333"),
        (summary(470, 130), 0.5, 1.4, CORES, "locust (0.50) and the server (1.40) used 1.90 of 2 cores together"),
        (summary(50, 1900), 0.05, 1.0, SERVER_CPU, "its Python code runs on one core at a time"),
        (summary(50, 1900), 0.05, 0.05, SERVER, "requests wait inside the server"),
    ],
)
def test_each_row_says_what_bounded_it(figures, locust_cpu, server_cpu, bound, because):
    row = Row.measured("multithread", figures, locust_cpu, server_cpu, 10, QUICK)
    assert row.bound == bound and because in row.why, row.why


def test_the_table_flags_a_saturated_load_generator_and_prints_the_settings_under_it():
    rows = [
        Row.measured("single", summary(1000, 20, failures=2), 0.97, 0.2, 10, QUICK),
        Row.measured("multiprocess", summary(470, 130), 0.5, 1.4, 10, QUICK),
    ]
    table = markdown(rows, QUICK, [])
    assert "| single | GET | / | 1000 | 2 |" in table and "97% ⚠" in table and "| 2.98 | cores |" in table
    assert "- single: bound by locust: locust used 97% of a core" in table
    assert "- single: 2 failures: 2 x ConnectionResetError" in table
    assert "- multiprocess: bound by cores:" in table
    settings = ("users: 100, spawned at 100/s", "closed-loop ceiling N / Z: 1333 requests/s", "client timeout: 10 s")
    settings += ("start method: fork", "open-file limit (ulimit -n):", "cores: 2", "locust processes: 1")
    assert all(setting in table for setting in settings), table


def test_a_run_at_the_closed_loop_ceiling_is_labelled_so(tmp_path):
    """10 users who wait 0.2-0.3 s ask for at most 10 / 0.25 s = 40 requests/s: the server answers in about
    a millisecond, so the users' wait sets the throughput."""
    result = compare(
        tmp_path, "--users", "10", "--spawn-rate", "10", "--run-time", "3s", "--modes", "multithread",
        "--min-wait", "0.2", "--max-wait", "0.3",
    )  # fmt: skip
    (row,) = result["rows"]
    assert row["bound"] == WAIT, row["why"]
    assert result["settings"]["ceiling"] == 40 and "ceiling N / Z: 40 requests/s" in result["stdout"]


def test_a_server_slowed_on_purpose_is_labelled_server_bound(tmp_path):
    """4 users who never wait, against the single server doing 50 ms of I/O per request: about 20
    requests/s, each waiting for the ones before it; locust and the server are nearly idle."""
    result = compare(
        tmp_path, "--users", "4", "--spawn-rate", "4", "--run-time", "3s", "--modes", "single",
        "--min-wait", "0", "--max-wait", "0", "--work-ms", "50", "--work-kind", "io",
    )  # fmt: skip
    (row,) = result["rows"]
    assert row["bound"] == SERVER, row["why"]
    assert row["summary"]["rps"] <= 21 and row["summary"]["median_ms"] >= 150
    assert row["server_cpu_ms"] < 20  # a sleep costs no CPU (counted in ticks of 10 ms: under one reads 0)


@pytest.mark.parametrize(("text", "seconds"), [("20", 20), ("20s", 20), ("2m", 120), ("1.5h", 5400)])
def test_run_time_accepts_locust_style_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--run-time", "soon"], "not a duration"),
        (["--sweep", "--step-time", "1.5s"], "locust runs for whole seconds, not '1.5s'"),
        (["--users", "-3"], "--users must be positive"),
        (["--min-wait", "2", "--max-wait", "1"], "--min-wait <= --max-wait"),
    ],
)
def test_bad_settings_are_refused_before_anything_starts(tmp_path, options, message):
    run = subprocess.run(
        [sys.executable, "-m", "autograder", "compare", str(SOLUTION), "--out", tmp_path, *options],
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
