"""The project's locustfile, run for real: locust as a subprocess (never imported here: it
monkey-patches socket and threading with gevent), against reference servers and a broken one."""

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from autograder import KIT
from autograder.checks import check_load
from autograder.marks import Deduction, GraderStarved

from conftest import mutant


def locust(server, tmp_path, seconds: int = 3, per_user: int = 0) -> dict:
    summary = tmp_path / "summary.json"
    command = [sys.executable, "-m", "locust", "-f", KIT / "locustfile.py", "--headless", "--only-summary"]
    command += ["--host", f"http://{server.host}:{server.port}", "-u", "20", "-r", "20", "-t", f"{seconds}s"]
    command += ["--min-wait", "0.05", "--max-wait", "0.1", "--request-timeout", "2", "--summary-file", summary]
    command += ["--requests-per-user", str(per_user)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, cwd=tmp_path)
    assert summary.exists(), run.stderr[-2000:]
    return {"exit": run.returncode, **json.loads(summary.read_text())}


def test_every_reference_server_answers_a_set_load_with_no_failure(start_server, mode, tmp_path):
    """20 users x 5 requests: the run ends when each user has made its 5 (long before -t ends it, which
    would have made far more), whatever the machine's speed."""
    result = locust(start_server(mode), tmp_path, seconds=60, per_user=5)
    assert result["failures"] == 0 and result["errors"] == {} and result["exit"] == 0
    assert result["requests"] == 100
    assert 0 < result["median_ms"] <= result["p90_ms"] <= result["max_ms"]
    assert result["lag_max_ms"] >= 0 and result["cpu_s"] > 0 and result["cpu_wait_s"] >= result["run_cpu_wait_s"] >= 0


def test_a_server_that_does_not_echo_fails_every_request_with_a_reason(start_server, tmp_path):
    broken = mutant(tmp_path / "sub", "handler.py", '.encode("ascii") + request', '.encode("ascii") + request[::-1]')
    result = locust(start_server("single", root=broken), tmp_path)
    assert result["requests"] > 0 and result["failures"] == result["requests"] and result["exit"] == 1
    (message,) = result["errors"]
    assert "the body does not echo the request line" in message


GOOD = {"requests": 200, "failures": 0, "errors": {}, "rps": 10.0, "median_ms": 5, "p90_ms": 9, "lag_max_ms": 3}
SLOW = {**GOOD, "median_ms": 2100}
SLOWISH = {**GOOD, "median_ms": 900}  # fast: within the bound, as the reference on a busy machine may be
STARVED = {**SLOW, "run_s": 2.0, "run_cpu_wait_s": 1.2}  # it waited for a CPU for 60% of its run
HUNG = {**GOOD, "failures": 150, "median_ms": 10000}  # most requests ran out of time
LOST = {**GOOD, "failures": 4}  # 4 requests got no reply within the request timeout
WRONG = {**SLOW, "failures": 3, "errors": {"status 500, expected 200": 3}}
BY_THE_REFERENCE = "twice; the second time, the kit's reference server, loaded at the same time .* a median of 5 ms"


def decide(serve, run_locusts, outcome: str, tmp_path, **patches) -> SimpleNamespace:
    """The load check of a multithread server, its locust runs given by run_locusts (and check_load's names
    in patches set so), with no pause between tries: it passes, or raises the fault or the deduction that
    outcome (a pattern) says. The grading it wrote its notes into."""
    grading = SimpleNamespace(notes={})
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"run_locusts": run_locusts, "PAUSE": 0.0, **patches}.items():
            patch.setattr(check_load, name, value)
        if outcome == "passed":
            check_load.check_load(serve, "multithread", grading, tmp_path)
        else:
            fault = GraderStarved if "too busy" in outcome else Deduction
            with pytest.raises(fault, match=outcome):
                check_load.check_load(serve, "multithread", grading, tmp_path)
    return grading


# This server's run alone; where it was not fast, tries of a new server of it and the reference at once.
@pytest.mark.parametrize(
    ("runs", "outcome"),
    [
        ([GOOD], "passed"),
        ([WRONG], "3 of 200 requests failed under load: 3 x status 500"),
        ([SLOW, (GOOD, GOOD)], "passed"),
        ([SLOW, (SLOW, GOOD)], f"the median reply took 2100 ms \\(at most 1000 expected, {BY_THE_REFERENCE}"),
        ([LOST, (LOST, GOOD)], f"4 of 200 requests got no reply within 10 s \\({BY_THE_REFERENCE}"),
        ([SLOW, (SLOW, SLOWISH)], "passed"),
        ([SLOW, ({**SLOW, "median_ms": 2300}, SLOWISH)], "took 2300 ms \\(at most 2250 expected, .* median of 900 ms"),
        ([SLOW, (SLOW, SLOW), (GOOD, GOOD)], "passed"),
        ([SLOW, (HUNG, SLOW)], "took 10000 ms \\(at most 5250 expected, .* over 2.5 times .* slow too: 2100 ms"),
        ([SLOW, (SLOW, STARVED), (SLOW, GOOD)], f"the median reply took 2100 ms .*{BY_THE_REFERENCE}"),
        ([SLOW, *[(SLOW, STARVED)] * 3], "a median of 2100 ms; .* waited for a CPU 60% of it.* too busy to judge"),
    ],
    ids=[
        "fast",
        "wrong replies",
        "slow, then fast beside the fast reference",
        "slow, then slow beside the fast reference",
        "replies lost, then lost beside the fast reference",
        "slow, then within 2.5 times the reference's median",
        "slow, then over 2.5 times the reference's median",
        "slow, then beside the slow reference, then fast",
        "slow, then over 2.5 times the median of the slow reference",
        "slow, beside the slow reference, then slow beside the fast one",
        "the reference never fast",
    ],
)
def test_the_load_check_deducts_only_what_rules_the_machine_out(start_server, tmp_path, runs, outcome):
    """The load check's decision, its locust runs replaced by the summaries they could give (the servers are
    real): a slow run counts against the server only when a new server of it, loaded at the same time as the
    kit's reference in the same conditions, was slow again while the reference was fast (and over 2.5 times its
    median); wrong replies always count."""
    given = iter(runs)
    kinds, ran = {}, []

    def serve(mode, reference=False):
        server = start_server(mode)
        kinds[id(server)] = "reference" if reference else "submission"
        return server

    def run_locusts(servers, folder):
        ran.append(tuple(kinds[id(server)] for server in servers))
        summaries = next(given)
        return list(summaries) if isinstance(summaries, tuple) else [summaries]

    grading = decide(serve, run_locusts, outcome, tmp_path)
    if outcome == "passed":  # the figures of the run that passed
        median = (runs[-1][0] if isinstance(runs[-1], tuple) else runs[-1])["median_ms"]
        assert grading.notes == {"load (multithread)": f"10 requests/s, median {median} ms, 90% 9 ms"}
    assert next(given, None) is None  # every run used, and no more
    assert ran == [("submission",)] + [("submission", "reference")] * (len(runs) - 1)  # the reference beside


@pytest.mark.parametrize(
    ("runs", "outcome"),
    [
        ([GOOD], "passed"),
        ([SLOW], "the median reply took 2100 ms .*while locust kept time"),
        ([STARVED, SLOW], "the median reply took 2100 ms .*while locust kept time"),
        (
            [STARVED] * 3,
            "locust did not keep time in any of 3 tries .*waited for a CPU 60%.* too busy to judge the load",
        ),
    ],
    ids=["fast", "slow while locust kept time", "starved, then slow", "always starved"],
)
def test_without_the_reference_a_slow_run_counts_only_when_locust_kept_time(start_server, tmp_path, runs, outcome):
    """In a bundle for Gradescope or PrairieLearn there is no solution/ to run beside: a slow run counts
    when locust itself kept time, and no reference is ever started."""
    given = iter(runs)

    def serve(mode, reference=False):
        assert not reference, "a reference was started where there is none"
        return start_server(mode)

    decide(serve, lambda servers, folder: [next(given)], outcome, tmp_path, SOLUTION=tmp_path / "no-solution")
    assert next(given, None) is None
