"""Load: a locust run of the kit's locustfile against each mode. 3 points.

locust runs as a subprocess: importing it here would monkey-patch socket and threading (gevent).
The run is a set number of requests (USERS users, PER_USER requests each), not a time window: how many
requests a busy machine lets locust make in some seconds is the machine's doing, not the server's. The
grade asks for the server's part alone: every reply correct, and replies sent at once (the median
within SLOW_MS: a correct server at half a CPU beside six CPU hogs answers in about 200 ms). A reply
late by more than that counts only when locust itself kept time: a generator whose own timers fired late
(stopped), or that waited for a CPU for a good share of the run (the machine starved it, and the server
that shares the machine with it), makes every reply look late. Such a run is done again; when no run keeps
time, the grading machine was too busy to judge, which is a fault of the grading, never a deduction.
Requests/s and latencies are reported for information.
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from autograder import KIT, machine
from autograder.checks.probes import check, served
from autograder.marks import GraderStarved, expect

USERS, PER_USER = 50, 4  # 200 requests; every user's first request comes at once, as the report's clients did
SLOW_MS = 1000  # the median reply, at most (a correct server beside six CPU hogs at half a CPU: about 200 ms)
REQUEST_TIMEOUT = 10  # seconds: a request that takes longer fails (a hung server must not hang the run)
LAG_MS = 500  # a generator whose timers fired this late did not keep time: its run does not count
STARVED = 0.3  # nor one that waited for a CPU this share of its run (the machine starved it, and the server beside it)
ATTEMPTS = 3
BACKSTOP = 60  # seconds locust may run at most (200 requests take under 2 s at half a CPU)


@check("load", points=1, optional=2)
@pytest.mark.timeout(ATTEMPTS * (BACKSTOP + 30))
def check_load(serve, mode, grading, tmp_path):
    """Locust: 50 users x 4 requests

    Locust, 50 users x 4 requests: every reply correct, at once.
    """
    server = serve(mode)
    served(server, when="before the load")  # a server that fails one request would fail them all: no load then
    for attempt in range(1, ATTEMPTS + 1):
        began = time.monotonic()
        result = run_locust(server, Path(tempfile.mkdtemp(prefix=f"run-{attempt}-", dir=tmp_path)))
        late = max(result["lag_max_ms"] or 0.0, machine.clock().worst_lateness(began) * 1000)
        waited = (result.get("run_cpu_wait_s") or 0.0) / max(result.get("run_s") or 1.0, 0.1)  # share of the run
        wrong = {error: n for error, n in result["errors"].items() if not timed_out(error)}
        expect(
            not wrong,
            f"{sum(wrong.values())} of {result['requests']} requests failed under load: "
            + "; ".join(f"{count} x {error}" for error, count in wrong.items())[:300],
        )
        complete = result["requests"] == USERS * PER_USER and not result["failures"]
        if complete and result["median_ms"] <= SLOW_MS:
            break
        if late <= LAG_MS and waited <= STARVED:  # locust kept time: what it saw is the server's (one of these fails)
            expect(
                not result["failures"],  # timeouts alone are left
                f"{result['failures']} of {result['requests']} requests got no reply within {REQUEST_TIMEOUT} s "
                "under load",
            )
            expect(
                result["requests"] == USERS * PER_USER,
                f"only {result['requests']} of {USERS * PER_USER} requests were made within {BACKSTOP} s",
            )
            expect(
                result["median_ms"] <= SLOW_MS,
                f"under load, the median reply took {result['median_ms']:.0f} ms (at most {SLOW_MS} expected, while "
                "the grader kept time): is each reply sent as soon as its request is in?",
            )
    else:
        last = (
            f"its timers fired up to {late / 1000:.1f} s late"
            if late > LAG_MS
            else f"it waited for a CPU for {waited:.0%} of it"
        )
        raise GraderStarved(
            f"locust did not keep time in any of {ATTEMPTS} runs (in the last, {last}): the grading machine was too "
            "busy to judge the load (grade again)"
        )
    grading.notes[f"load ({mode})"] = (  # only for a run without failures: else the figure means nothing
        f"{result['rps']:.0f} requests/s, median {result['median_ms']:.0f} ms, 90% {result['p90_ms']:.0f} ms"
    )


def timed_out(error: str) -> bool:
    """Whether a locust error is a request that ran out of time (the one error a busy machine can cause)."""
    return "timed out" in error.lower() or "timeout" in error.lower()


def run_locust(server, folder: Path) -> dict:
    """The summary of one headless locust run of the kit's locustfile against server (its files in folder)."""
    summary = folder / "summary.json"
    command = [sys.executable, "-m", "locust", "-f", str(KIT / "locustfile.py"), "--headless", "--only-summary"]
    command += ["--host", f"http://{server.host}:{server.port}", "-u", str(USERS), "-r", "1000"]
    command += ["--requests-per-user", str(PER_USER), "-t", f"{BACKSTOP}s", "--min-wait", "0.05", "--max-wait", "0.1"]
    command += ["--request-timeout", str(REQUEST_TIMEOUT), "--summary-file", str(summary), "--stop-timeout", "5"]
    command += ["--exit-code-on-error", "0"]
    command, fds = server.in_network(command)  # where the server has a network of its own, locust runs in it
    with open(folder / "locust.log", "wb") as log:
        subprocess.run(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=folder, timeout=BACKSTOP + 25, check=False, pass_fds=fds
        )
    if not summary.exists():
        raise RuntimeError(f"locust wrote no summary: {(folder / 'locust.log').read_text()[-1000:]}")
    return json.loads(summary.read_text())
