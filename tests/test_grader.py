"""The autograder, run as students and instructors run it (`python -m autograder grade ...`), on the
reference, on the unfilled skeleton, and on copies of the reference that each carry one realistic bug."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder import ASSIGNMENT, KIT, SOLUTION
from autograder.harness import ControlGroups, Limits

from conftest import leftovers, mutant

CATEGORIES = ("protocol", "concurrency", "hygiene", "start-methods", "load")


RUN = f"test-{os.getpid()}-"  # the tag prefix of the servers of these tests' grading runs


def grade(
    submission: Path, tmp_path: Path, *options: str, timeout: float = 150, columns: int = 200
) -> tuple[dict, str, float]:
    """(results.json, what was printed, seconds) of one grading run, printed at that many columns."""
    out = tmp_path / "results.json"
    start = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", submission, "--json", out, *options],
        cwd=KIT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": str(columns), "CONCURRENCY_LAB_TAG_PREFIX": RUN},
    )
    seconds = time.monotonic() - start
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(out.read_text()), run.stdout, seconds


def by_category(results: dict) -> dict[str, list[dict]]:
    tests: dict[str, list[dict]] = {}
    for test in results["tests"]:
        tests.setdefault(test["tags"][0], []).append(test)
    return tests


def test_the_reference_scores_100_with_a_gradescope_results_json(tmp_path):
    results, printed, seconds = grade(SOLUTION, tmp_path, columns=80)
    assert results["score"] == 100, [(t["name"], t["output"]) for t in results["tests"] if t["score"] < t["max_score"]]
    report = printed.split("results written to")[0]  # as without --json
    assert len(report.splitlines()) <= 60, printed  # a full-marks report fits a terminal: one line a check
    rows = [line for line in printed.splitlines() if re.match(r" +\d\.\d+ │", line)]
    assert len(rows) == len({t["number"] for t in results["tests"]}), printed  # no title wraps
    tests = by_category(results)
    assert sum(t["max_score"] for category, ts in tests.items() if category != "optional" for t in ts) == 100
    assert sum(t["max_score"] for t in tests["optional"]) == 46  # the optional part, beside the 100
    assert set(tests) == {*CATEGORIES, "optional"}
    for test in results["tests"]:
        assert set(test) >= {"name", "number", "score", "max_score", "status", "output", "visibility"}
        assert test["status"] == "passed" and test["visibility"] in ("visible", "after_published")
    assert results["execution_time"] <= seconds and seconds <= 120  # 60 s is the target for the 100, on a quiet machine
    assert "Concurrency Lab: 100 / 100 points" in printed and "Optional part, beside the 100: 46 / 46" in printed
    assert "requests/s" in printed and "hidden checks" not in printed  # the official grading runs them
    assert leftovers(RUN) == []


def test_the_unfilled_skeleton_scores_0_and_says_what_is_missing(tmp_path):
    results, printed, _ = grade(ASSIGNMENT, tmp_path)  # bounded by grade()'s timeout; benchmarks time it
    assert results["score"] == 0 and len(results["tests"]) == 69  # the 100; the optional part is the skeleton as given
    assert "optional part: not handed in" in printed
    printed = " ".join(printed.split())
    assert "multiprocess_server.py: reap_children() and serve() are not written yet" in printed  # one line a file
    assert "handler.py: build_reply(), handle_client() and read_request() are not written yet" in printed
    assert printed.count("is not implemented yet") == 0  # not a line per check
    assert "grader fault" not in printed
    assert leftovers(RUN) == []


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: (d / "handler.py").unlink(), "missing handler.py"),
        (lambda d: (d / "single_server.py").write_text("def serve(:\n"), "single_server.py does not parse"),
        (lambda d: (d / "handler.py").unlink() or (d / "x.txt").write_text(""), "missing handler.py"),
    ],
)
def test_a_submission_that_cannot_be_graded_says_why_with_exit_2(tmp_path, make, reason):
    submission = mutant(tmp_path / "sub", "handler.py", "HEAD_END = ", "HEAD_END = ")
    make(submission)
    run = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", submission], cwd=KIT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2 and f"not gradable: {reason}" in run.stderr and "Traceback" not in run.stderr


def test_files_a_submission_adds_for_pytest_have_no_effect(tmp_path):
    submission = mutant(tmp_path / "sub", "handler.py", "HEAD_END = ", "HEAD_END = ")
    marker = tmp_path / "imported"
    (submission / "conftest.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit(1)\n")
    (submission / "pytest.ini").write_text("[pytest]\naddopts = --this-option-does-not-exist\n")
    (submission / "check_evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    results, _, _ = grade(submission, tmp_path, "--mode", "single", "--check", "echo")
    assert results["score"] == 1 and not marker.exists()


def cap_available() -> bool:
    """Whether a fork bomb would meet a hard cap here: a cgroup pids controller, or RLIMIT_NPROC for non-root."""
    if os.geteuid() != 0:
        return True
    groups = ControlGroups("concurrency-lab-probe", Limits())
    try:
        return groups.caps_tasks
    finally:
        groups.remove()


@pytest.mark.skipif(not cap_available(), reason="no hard cap on processes here (root without a cgroup pids controller)")
def test_a_fork_bomb_is_capped_graded_and_cleaned_up(tmp_path):
    bomb = "    context = multiprocessing.get_context(start_method)  # fork, spawn or forkserver\n"
    forking = "    while True:\n        try:\n            __import__('os').fork()\n"
    forking += "        except OSError:\n            pass\n"
    submission = mutant(tmp_path / "sub", "multiprocess_server.py", bomb, bomb + forking)
    results, printed, seconds = grade(  # one bomb at a time: two at once can outrun the check's look at the cap
        submission, tmp_path, "--mode", "multiprocess", "--check", "echo", "--check", "held", "--jobs", "1"
    )
    assert "grader fault" not in printed
    assert results["score"] == 0 and seconds < 120
    assert any("processes and threads" in t["output"] for t in results["tests"]), results["tests"]
    assert leftovers(RUN) == []


def test_a_child_that_escapes_into_its_own_session_is_found_and_killed(tmp_path):
    escape = (
        "    import os, time\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(600)\n"
        "        os._exit(0)\n"
        "    while (client"
    )
    submission = mutant(tmp_path / "sub", "single_server.py", "    while (client", escape)
    results, printed, _ = grade(submission, tmp_path, "--mode", "single", "--check", "echo")
    assert results["score"] == 1 and "grader fault" not in printed
    assert leftovers(RUN) == []


@pytest.mark.parametrize(
    ("name", "file", "old", "new", "mode", "check"),
    [
        (
            "an endless loop",
            "handler.py",
            "    request = bytearray()\n",
            "    while True:\n        pass\n",
            "single",
            "echo",
        ),
        (
            "a stdout flood",
            "single_server.py",
            "    while (client",
            "    while True:\n        print('x' * 4096)\n    while (client",
            "single",
            "echo",
        ),
        (
            "ignoring signals",
            "single_server.py",
            "    while (client",
            "    import signal\n    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "    signal.signal(signal.SIGINT, signal.SIG_IGN)\n    while (client",
            "single",
            "graceful",
        ),
    ],
)
def test_a_hostile_submission_is_graded_in_bounded_time(tmp_path, name, file, old, new, mode, check):
    submission = mutant(tmp_path / "sub", file, old, new)
    results, printed, seconds = grade(submission, tmp_path, "--mode", mode, "--check", check)
    assert results["tests"] and results["score"] == 0 and seconds < 120, name
    assert "grader fault" not in printed
    assert leftovers(RUN) == []


@pytest.mark.parametrize(
    ("name", "file", "old", "new", "mode", "lost", "title"),
    [
        (
            "an unbounded pool",
            "threadpool_server.py",
            "ThreadPoolExecutor(max_workers=workers,",
            "ThreadPoolExecutor(max_workers=10000,",
            "threadpool",
            "pool_stays_bounded",
            "--workers threads",
        ),
        (
            "an event loop that waits for a slow client",
            "eventloop_server.py",
            "    chunk = client.conn.recv(MAX_REQUEST - len(client.request))\n",
            "    client.conn.setblocking(True)\n    while HEAD_END not in client.request:\n"
            "        client.request += client.conn.recv(1024)\n    chunk = b''\n",
            "eventloop",
            "one_thread",
            "one thread",
        ),
    ],
)
def test_a_bug_in_the_optional_part_loses_its_own_check(tmp_path, name, file, old, new, mode, lost, title):
    submission = mutant(tmp_path / "sub", file, old, new, optional=True)
    results, printed, _ = grade(submission, tmp_path, "--mode", mode, "--check", lost, "--check", "echo")
    assert len(results["tests"]) == 2 and results["score"] == 0  # the optional part never counts in the 100
    (bad,) = [t for t in results["tests"] if t["score"] < t["max_score"]]
    assert title in bad["name"] and bad["output"] != "ok", name
    assert "grader fault" not in printed
    assert leftovers(RUN) == []


def test_a_process_that_survives_teardown_makes_the_run_a_grader_fault_not_a_pass(tmp_path):
    """Fault injection in a real grader process: the teardown reports a survivor after the real kill."""
    out = tmp_path / "results.json"
    inject = (
        "import sys\n"
        "from autograder import harness\n"
        "kill = harness.Server.kill\n"
        "harness.Server.kill = lambda self: kill(self) + [999999]\n"
        "from autograder.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", inject, "grade", SOLUTION, "--mode", "single", "--check", "echo", "--json", out],
        cwd=KIT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", "CONCURRENCY_LAB_TAG_PREFIX": RUN},
    )
    assert run.returncode == 3, run.stdout + run.stderr
    assert "The grader had a fault, so this is not a grade" in run.stdout and "999999" in run.stdout
    (test,) = json.loads(out.read_text())["tests"]
    assert test["score"] == 0 and "processes that survived SIGKILL" in test["output"]
    assert leftovers(RUN) == []


def test_a_self_check_counts_the_hidden_points_it_left_out(tmp_path):
    from autograder.marks import HIDDEN_POINTS
    from autograder.plugin import Grader, Settings

    def hidden_not_run(**settings) -> float:
        return Grader(Settings(str(SOLUTION), str(tmp_path), include_hidden=False, **settings)).hidden_not_run

    assert hidden_not_run() == HIDDEN_POINTS
    assert hidden_not_run(modes=["single"]) == HIDDEN_POINTS / 3
    assert hidden_not_run(only=["echo"]) == 0  # a part only


def test_hidden_points_is_what_the_hidden_checks_are_worth():
    from autograder.marks import HIDDEN_POINTS

    rubric = subprocess.run(
        [sys.executable, "-m", "autograder", "rubric"], cwd=KIT, capture_output=True, text=True, check=True
    ).stdout
    rows = [line for line in rubric.splitlines() if "(hidden: official grading only)" in line]
    assert rows and sum(float(row.split("|")[-2]) for row in rows) == HIDDEN_POINTS


def test_the_table_fits_80_columns_and_splits_no_word(tmp_path):
    out = tmp_path / "results.json"
    checks = ["--check", "check_start_method", "--check", "check_headers"]
    run = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", SOLUTION, "--json", out, "--mode", "multiprocess", *checks],
        cwd=KIT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "80", "CONCURRENCY_LAB_TAG_PREFIX": RUN},
    )
    assert run.returncode == 0, run.stderr
    assert max(len(line) for line in run.stdout.splitlines()) <= 80, run.stdout
    words = set(re.findall(r"[\w\[\]:,-]+", run.stdout))
    for test in json.loads(out.read_text())["tests"]:
        title = test["name"].split(": ", 1)[1].rsplit(": ", 1)[0]  # without the category and the mode
        assert set(title.split()) <= words, (title, run.stdout)
    assert "[forkserver]" in words and "optional part: not handed in" not in run.stdout  # not asked for here


def test_a_server_slow_to_start_loses_no_point_to_the_time_limit(tmp_path):
    """Start-up within the ready timeout is not counted against grading's time limit."""
    submission = mutant(
        tmp_path / "sub", "handler.py", "    args = parse_args(", "    time.sleep(2)\n    args = parse_args("
    )
    checks = ["--check", "check_status_line", "--check", "check_headers", "--check", "check_echo"]
    results, printed, seconds = grade(
        submission, tmp_path, "--mode", "single", *checks, "--check", "restart", "--jobs", "1", "--time-limit", "4"
    )
    assert seconds > 4 + 2  # four servers, each two seconds to start: past the limit, were start-up counted
    assert len(results["tests"]) == 4 and results["score"] == sum(t["max_score"] for t in results["tests"]), printed


def test_a_mode_whose_server_hangs_uses_up_its_own_time_never_another_modes(tmp_path):
    """The multiprocess server takes every client and never answers: its checks wait for replies until its
    mode's time is used up, and its later checks are not run; the multithread checks, graded in the same
    worker after and between them, all keep their points."""
    submission = mutant(
        tmp_path / "sub",
        "multiprocess_server.py",
        "        context.Process(target=handle_client, args=(conn, addr)).start()\n        conn.close()",
        "        HUNG.append(conn)  # never answered",
    )
    source = (submission / "multiprocess_server.py").read_text()
    (submission / "multiprocess_server.py").write_text(source.replace("\ndef serve(", "\nHUNG = []\n\n\ndef serve(", 1))
    options = ("--mode", "multiprocess", "--mode", "multithread", "--check", "protocol", "--jobs", "1")
    results, printed, _ = grade(submission, tmp_path, *options, "--time-limit", "20", timeout=300)
    hung = [t for t in results["tests"] if t["name"].endswith(": multiprocess")]
    other = [t for t in results["tests"] if t["name"].endswith(": multithread")]
    assert hung and other and all(t["score"] == 0 for t in hung)
    assert any("not run: the grading of this mode reached its limit of 20 s" in t["output"] for t in hung), hung
    assert all(t["score"] == t["max_score"] for t in other), [t["output"] for t in other if t["score"] == 0]
    assert "grader fault" not in printed and leftovers(RUN) == []


def test_a_check_that_runs_out_of_time_beside_another_loses_its_points_and_is_no_fault(tmp_path):
    """Every reply takes 0.15 s: the 400 requests of the burst check outlast its 40 s, in a pytest-xdist
    worker (two checks, two jobs), where the grading runs pytest without its terminal. pytest-timeout's
    report of it must not fail for want of a terminal (it did: a grader fault)."""
    reply = "        conn.sendall(build_reply(request))\n"
    submission = mutant(tmp_path / "sub", "handler.py", reply, f"        time.sleep(0.15)\n{reply}")
    options = ("--mode", "single", "--check", "burst", "--check", "echo", "--jobs", "2")
    results, printed, _ = grade(submission, tmp_path, *options)
    outputs = {t["name"].split(":")[1].strip(): (t["score"], t["output"]) for t in results["tests"]}
    assert outputs["Nothing grows with requests"][0] == 0, outputs
    assert "did not finish within 40 s" in outputs["Nothing grows with requests"][1], outputs
    assert outputs["The body echoes the request"][0] == 1, outputs
    assert "grader fault" not in printed and leftovers(RUN) == []
