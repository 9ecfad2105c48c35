"""The project's locustfile, run for real: locust as a subprocess (never imported here: it
monkey-patches socket and threading with gevent), against reference servers and a broken one."""

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from autograder import KIT
from autograder.checks import check_load
from autograder.marks import Deduction

from conftest import mutant


def locust(server, tmp_path, seconds: int = 3) -> dict:
    summary = tmp_path / "summary.json"
    command = [sys.executable, "-m", "locust", "-f", KIT / "locustfile.py", "--headless", "--only-summary"]
    command += ["--host", f"http://{server.host}:{server.port}", "-u", "20", "-r", "20", "-t", f"{seconds}s"]
    command += ["--min-wait", "0.05", "--max-wait", "0.1", "--request-timeout", "2", "--summary-file", summary]
    run = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, cwd=tmp_path)
    assert summary.exists(), run.stderr[-2000:]
    return {"exit": run.returncode, **json.loads(summary.read_text())}


def test_every_reference_server_passes_a_short_load_with_no_failure(start_server, mode, tmp_path):
    server = start_server(mode)
    result = locust(server, tmp_path)
    if result["requests"] < 100:  # as the load check does: a busy machine can starve locust, so once more
        (tmp_path / "again").mkdir()
        result = locust(server, tmp_path / "again")
    assert result["failures"] == 0 and result["errors"] == {} and result["exit"] == 0
    # 20 users for 3 s: up to 800 requests with the waits of 0.05-0.1 s asked for, at most 80 with the
    # locustfile's own between(1, 5) (the floor tells them apart; a starved locust served 149 here)
    assert result["requests"] >= 100
    assert 0 < result["median_ms"] <= result["p90_ms"] <= result["max_ms"]


def test_a_server_that_does_not_echo_fails_every_request_with_a_reason(start_server, tmp_path):
    broken = mutant(tmp_path / "sub", "handler.py", '.encode("ascii") + request', '.encode("ascii") + request[::-1]')
    result = locust(start_server("single", root=broken), tmp_path)
    assert result["requests"] > 0 and result["failures"] == result["requests"] and result["exit"] == 1
    (message,) = result["errors"]
    assert "the body does not echo the request line" in message


@pytest.mark.parametrize(("counts", "lost"), [([40, 900], False), ([40, 60], True)])
def test_too_few_requests_under_load_are_measured_again_before_points_are_lost(start_server, tmp_path, counts, lost):
    """A busy machine can starve locust: the load check runs it again before it deducts (its locust runs
    replaced here by the summaries they could give; the server is real)."""
    server = start_server("multithread")
    runs = iter(counts)
    summary = {"failures": 0, "errors": {}, "rps": 10.0, "median_ms": 5.0, "p90_ms": 9.0}
    grading = SimpleNamespace(notes={})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(check_load, "run_locust", lambda server, folder: {**summary, "requests": next(runs)})
        if lost:
            with pytest.raises(Deduction, match="only 60 requests completed in 3 s with 50 users, twice"):
                check_load.check_load(lambda mode: server, "multithread", grading, tmp_path)
        else:
            check_load.check_load(lambda mode: server, "multithread", grading, tmp_path)
            assert grading.notes == {"load (multithread)": "10 requests/s, median 5 ms, 90% 9 ms"}
    assert next(runs, None) is None  # both runs used, and no third
