"""`python -m autograder compare`, end to end on tiny settings: servers and locust run for real."""

import csv
import itertools
import json
import os
import pty
import subprocess
import sys
import threading

import pytest

from autograder import KIT, SOLUTION
from autograder.compare import (
    CORES,
    FAILURES,
    LOCUST,
    MACHINE_BUSY,
    SERVER,
    SERVER_CPU,
    WAIT,
    Row,
    Settings,
    combine,
    markdown,
    parse_duration,
    read_timeline,
)

PROGRESS = "━"  # what rich draws a progress bar with


def compare(tmp_path, *options: str, terminal: bool = False) -> dict:
    """A compare run: its output (stdout, or the terminal's when terminal) and its JSON."""
    out = tmp_path / "out"
    command = [sys.executable, "-m", "autograder", "compare", str(SOLUTION), "--out", str(out), *options]
    if terminal:
        returncode, stdout = in_a_terminal(command, timeout=180)
    else:
        run = subprocess.run(command, cwd=KIT, capture_output=True, text=True, timeout=180)
        returncode, stdout = run.returncode, run.stdout + run.stderr
    assert returncode == 0, stdout[-4000:]
    return {"stdout": stdout, "out": out, **json.loads((out / "compare.json").read_text())}


def in_a_terminal(command: list[str], timeout: float) -> tuple[int, str]:
    """(exit status, what it wrote) of command run with a pseudo-terminal as its stdout and stderr."""
    controller, terminal = pty.openpty()
    written = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal's last holder closed it
                return
            if not chunk:
                return
            written.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        with subprocess.Popen(command, cwd=KIT, stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal) as run:
            os.close(terminal)
            try:
                returncode = run.wait(timeout)
            except subprocess.TimeoutExpired:
                run.kill()
                raise
        reader.join(10)
    finally:
        os.close(controller)
    return returncode, written.decode(errors="replace")


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
    # requests made for real, none failed; how many fit in 2 s depends on how busy the machine is
    assert all(int(row["# Requests"]) > 0 and row["# Fails"] == "0" for row in rows), rows
    assert "client timeout: 10 s" in table and "--reset-stats" in table
    assert all(row["bound"] and row["server_cpu_ms"] >= 0 for row in result["rows"])  # 0 below the 10 ms tick
    assert all(0 < row["locust_cpu"] < 1.5 for row in result["rows"])
    assert all(row["cpus"] >= 1 and row["others_cpu"] >= 0 and row["repeats"] == 1 for row in result["rows"])
    assert PROGRESS not in result["stdout"], "a log (not a terminal) gets no progress bar"
    gil = subprocess.run(
        [sys.executable, "-c", "import sys; print(getattr(sys, '_is_gil_enabled', lambda: True)())"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
    assert result["interpreter"]["gil"] == (gil == "True") and result["interpreter"]["python"].startswith("CPython")
    assert f"interpreter of the servers: {result['interpreter']['python']}, GIL " in table
    assert "the machine before the run: " in table and result["machine"]["cpus"] >= 1

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


QUICK = Settings(100, 100, 20, 0.05, 0.1, cores=2, gil=True)  # the quick preset: ceiling 100 / 0.075 s = 1333/s
FREE_THREADED = Settings(100, 100, 20, 0.05, 0.1, cores=2, python="CPython 3.14.0 (free-threaded build)", gil=False)


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


def test_one_core_at_a_time_is_the_interpreters_doing_not_assumed():
    """A thread server at a full core is bound by its CPU under the GIL; without the GIL its threads could use
    more cores, so the same figures say the server; the single server has one thread either way."""
    figures = summary(50, 1900)
    under_gil = Row.measured("multithread", figures, 0.05, 1.0, 10, QUICK)
    assert under_gil.bound == SERVER_CPU and "threads taking turns under the GIL" in under_gil.why
    free = Row.measured("multithread", figures, 0.05, 1.0, 10, FREE_THREADED)
    assert free.bound == SERVER and "GIL" not in free.why, free.why
    single = Row.measured("single", figures, 0.05, 1.0, 10, FREE_THREADED)
    assert single.bound == SERVER_CPU and "(one thread)" in single.why
    assert "GIL disabled" in "\n".join(FREE_THREADED.lines()) and "3.14.0 (free-threaded build)" in markdown(
        [free], FREE_THREADED, []
    )


def test_a_row_where_other_processes_took_the_cpus_says_so_beside_its_own_bound():
    quiet = Row.measured("single", summary(50, 1900), 0.05, 0.05, 10, QUICK, others_cpu=0.2, cpus=2)
    busy = Row.measured("single", summary(50, 1900), 0.05, 0.05, 10, QUICK, others_cpu=1.5, steal_cpu=0.1, cpus=2)
    assert not quiet.machine_busy and quiet.label == SERVER and not quiet.machine
    assert busy.machine_busy and busy.bound == SERVER and busy.label == "server, machine busy (75%)"
    assert "other processes took 1.50 of the 2 CPUs (75%, 0.10 of them stolen by the hypervisor)" in busy.machine
    table = markdown([busy], QUICK, [])
    assert "| server, machine busy (75%) | 150% |" in table and "- single: machine busy: other processes" in table
    assert 1.5 > MACHINE_BUSY * 2 > 0.2


def test_repeated_runs_give_the_medians_and_the_spread():
    runs = [
        Row.measured("multithread", summary(rps, ms), 0.3, 0.5, 10, QUICK, others_cpu=others, cpus=2)
        for rps, ms, others in ((400, 10, 0.1), (100, 40, 1.2), (380, 12, 0.1))
    ]
    row = combine(runs, QUICK)
    assert (row.repeats, row.summary["rps"], row.summary["median_ms"]) == (3, 380, 12)
    assert row.spread["rps"] == [100, 400] and row.spread["p90_ms"] == [20, 80]
    assert row.busy_runs == 1 and row.others_max == 1.2 and row.others_cpu == 0.1
    assert "machine busy in 1 of 3 runs: other processes took up to 1.20 of the 2 CPUs" in row.machine
    assert [run["rps"] for run in row.runs] == [400, 100, 380]
    assert row.cells()[-4:] == ["10%", "3", "100.0", "400.0"]


def test_the_table_flags_a_saturated_load_generator_and_prints_the_settings_under_it():
    rows = [
        Row.measured("single", summary(1000, 20, failures=2), 0.97, 0.2, 10, QUICK),
        Row.measured("multiprocess", summary(470, 130), 0.5, 1.4, 10, QUICK),
    ]
    table = markdown(rows, QUICK, [])
    assert "| single | GET | / | 1000 | 2 |" in table and "97% ⚠" in table and "| 2.98 | cores | 0% | 1 |" in table
    assert "- single: bound by locust: locust used 97% of a core" in table
    assert "- single: 2 failures: 2 x ConnectionResetError" in table
    assert "- multiprocess: bound by cores:" in table
    settings = ("users: 100, spawned at 100/s", "closed-loop ceiling N / Z: 1333 requests/s", "client timeout: 10 s")
    settings += ("start method: fork", "open-file limit (ulimit -n):", "cores: 2", "locust processes: 1")
    assert all(setting in table for setting in settings), table


def test_a_run_at_the_closed_loop_ceiling_is_labelled_so(tmp_path):
    """10 users who wait 0.2-0.3 s ask for at most 10 / 0.25 s = 40 requests/s: the server answers in about
    a millisecond, so the users' wait sets the throughput. On a terminal, a progress bar shows meanwhile."""
    result = compare(
        tmp_path, "--users", "10", "--spawn-rate", "10", "--run-time", "3s", "--modes", "multithread",
        "--min-wait", "0.2", "--max-wait", "0.3", terminal=True,
    )  # fmt: skip
    (row,) = result["rows"]
    assert row["bound"] == WAIT, row["why"]
    assert result["settings"]["ceiling"] == 40 and "ceiling N / Z: 40 requests/s" in result["stdout"]
    assert PROGRESS in result["stdout"] and "1/1 runs" in result["stdout"] and " left " in result["stdout"]


@pytest.fixture
def hogs():
    """Three processes that compute without a pause beside the test (each ends itself after 120 s)."""
    hog = "import time\nend = time.monotonic() + 120\nwhile time.monotonic() < end: pass"
    started = [subprocess.Popen([sys.executable, "-c", hog], stdin=subprocess.DEVNULL) for _ in range(3)]
    try:
        yield started
    finally:
        for process in started:
            process.kill()
        for process in started:
            process.wait(10)


def test_cpu_hogs_beside_a_run_give_machine_busy_rows_and_require_quiet_refuses(tmp_path, hogs):
    """Other processes that take the CPUs: the look before the run says the machine is not quiet, the row
    says machine busy with the share they took, beside its own bound; --require-quiet measures nothing."""
    light = ["--users", "2", "--spawn-rate", "2", "--run-time", "2s", "--modes", "single"]
    result = compare(tmp_path, *light, "--min-wait", "0.1", "--max-wait", "0.1")
    (row,) = result["rows"]
    assert row["machine_busy"] and row["others_cpu"] > MACHINE_BUSY * row["cpus"], row
    assert "not quiet: other processes used" in result["stdout"] and not result["machine"]["quiet"]
    table = (result["out"] / "compare.md").read_text()
    assert f"| {row['bound']}, machine busy (" in table and "- single: machine busy: other processes took" in table
    refused = subprocess.run(
        [sys.executable, "-m", "autograder", "compare", str(SOLUTION), "--out", tmp_path / "no", *light,
         "--require-quiet"],
        cwd=KIT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1 and "--require-quiet: not measuring" in refused.stderr, refused.stderr
    assert not (tmp_path / "no").exists() and "Traceback" not in refused.stderr


def test_the_timeline_draws_each_server_at_work(tmp_path):
    """A burst of clients at once against each server, 100 ms of sleep each: the single server serves one
    after another on its one thread; the thread server's requests overlap, in the one process; the process
    server serves each in a process of its own (started by forkserver, which inherits --timeline)."""
    out = tmp_path / "timeline"
    done = subprocess.run(
        [sys.executable, "-m", "autograder", "compare", str(SOLUTION), "--timeline", "--users", "6", "--work-ms", "100",
         "--work-kind", "io", "--start-method", "forkserver", "--out", out],
        cwd=KIT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = list(csv.DictReader((out / "timeline.csv").read_text().splitlines()))
    served = {mode: [r for r in rows if r["mode"] == mode] for mode in ("single", "multiprocess", "multithread")}
    assert all(len(requests) == 6 for requests in served.values()) and not any(r["error"] for r in rows)
    assert all(r["start_ms"] and r["close_ms"] and r["accept_ms"] and r["eof_ms"] for r in rows)

    def spans(requests: list[dict]) -> list[tuple[float, float]]:
        return sorted((float(r["start_ms"]), float(r["close_ms"])) for r in requests)

    single = spans(served["single"])
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(single)), single
    assert len({(r["pid"], r["thread"]) for r in served["single"]}) == 1
    threads = served["multithread"]
    assert len({r["pid"] for r in threads}) == 1 and threads[0]["pid"] == threads[0]["accept_pid"]
    assert len({r["thread"] for r in threads}) == 6
    overlapping = spans(threads)
    assert any(b[0] < a[1] for a, b in itertools.pairwise(overlapping)), overlapping
    processes = served["multiprocess"]
    assert len({r["pid"] for r in processes}) == 6 and all(r["pid"] != r["accept_pid"] for r in processes)
    assert "single, 100 ms io: 6 clients served in" in done.stdout and f"wrote {out / 'timeline.png'}" in done.stdout
    bursts = read_timeline(out / "timeline.json")  # what the lesson's figure draws its timeline from
    assert [(b.mode, b.workload, len(b.served)) for b in bursts] == [
        (mode, "100 ms io", 6) for mode in ("single", "multiprocess", "multithread")
    ]
    assert sorted(r.pid for r in bursts[1].served) == sorted(int(r["pid"]) for r in processes)

    import matplotlib.image

    pixels = matplotlib.image.imread(out / "timeline.png")
    assert pixels.shape[0] > 500 and pixels.shape[1] > 500 and pixels.std() > 0.05


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
        (["--repeat", "0"], "--repeat: must be a whole number of at least 1"),
        (["--timeline", "--sweep"], "--timeline is a run of its own"),
        (["--budget", "5m"], "--budget is the lesson's"),
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
