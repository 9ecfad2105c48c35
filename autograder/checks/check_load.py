"""Load: a short locust run of the kit's locustfile against each mode. 12 points.

locust runs as a subprocess: importing it here would monkey-patch socket and threading (gevent).
Requests/s and latencies are reported for information; the grade asks only for correct replies.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import KIT
from autograder.checks.probes import served
from autograder.marks import check, expect

USERS, SECONDS, MIN_REQUESTS = 50, 3, 100


@check("load", points=4, optional=2)
@pytest.mark.timeout(60)
def check_load(serve, mode, grading, tmp_path):
    """Locust, 50 users for 3 s: no failure"""
    server = serve(mode)
    served(server, when="before the load")  # a server that fails one request would fail them all: no load then
    for attempt in (1, 2):  # too few requests may be a busy machine's doing (locust starved): once more then
        result = run_locust(server, tmp_path / f"run-{attempt}")
        errors = "; ".join(f"{count} x {error}" for error, count in result["errors"].items())
        expect(
            result["failures"] == 0,
            f"{result['failures']} of {result['requests']} requests failed under load: {errors[:300]}",
        )
        if result["requests"] >= MIN_REQUESTS:
            break
    expect(
        result["requests"] >= MIN_REQUESTS,
        f"only {result['requests']} requests completed in {SECONDS} s with {USERS} users, twice "
        f"(at least {MIN_REQUESTS} expected): is each reply sent at once?",
    )
    grading.notes[f"load ({mode})"] = (  # only for a run without failures: else the figure means nothing
        f"{result['rps']:.0f} requests/s, median {result['median_ms']:.0f} ms, 90% {result['p90_ms']:.0f} ms"
    )


def run_locust(server, folder: Path) -> dict:
    """The summary of one headless locust run of the kit's locustfile against server (its files in folder)."""
    folder.mkdir()
    summary = folder / "summary.json"
    command = [sys.executable, "-m", "locust", "-f", str(KIT / "locustfile.py"), "--headless", "--only-summary"]
    command += ["--host", f"http://{server.host}:{server.port}", "-u", str(USERS), "-r", str(USERS)]
    command += ["-t", f"{SECONDS}s", "--min-wait", "0.05", "--max-wait", "0.1", "--request-timeout", "5"]
    command += ["--summary-file", str(summary), "--stop-timeout", "5", "--exit-code-on-error", "0"]
    with open(folder / "locust.log", "wb") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder, timeout=25, check=False)
    if not summary.exists():
        raise RuntimeError(f"locust wrote no summary: {(folder / 'locust.log').read_text()[-1000:]}")
    return json.loads(summary.read_text())
