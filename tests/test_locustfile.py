"""The project's locustfile, run for real: locust as a subprocess (never imported here: it
monkey-patches socket and threading with gevent), against reference servers and a broken one."""

import json
import subprocess
import sys

from autograder import KIT

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
    result = locust(start_server(mode), tmp_path)
    assert result["failures"] == 0 and result["errors"] == {} and result["exit"] == 0
    assert result["requests"] >= 200  # 20 users, a request every 0.05-0.1 s, for 3 s
    assert 0 < result["median_ms"] <= result["p90_ms"] <= result["max_ms"]


def test_a_server_that_does_not_echo_fails_every_request_with_a_reason(start_server, tmp_path):
    broken = mutant(tmp_path / "sub", "handler.py", '.encode("ascii") + request', '.encode("ascii") + request[::-1]')
    result = locust(start_server("single", root=broken), tmp_path)
    assert result["requests"] > 0 and result["failures"] == result["requests"] and result["exit"] == 1
    (message,) = result["errors"]
    assert "the body does not echo the request line" in message
