"""Load: a locust run of the kit's locustfile against each mode. 3 points.

locust runs as a subprocess: importing it here would monkey-patch socket and threading (gevent).
The run is a set number of requests (USERS users, PER_USER requests each), not a time window: how many
requests a busy machine lets locust make in some seconds is the machine's doing, not the server's. The
grade asks for the server's part alone: every reply correct, and replies sent at once (the median
within SLOW_MS: a correct server at half a CPU beside six CPU hogs answers in about 200 ms).

A run that was not that fast is judged against the kit's reference server of the mode, run next in the same
conditions (same isolation, same network, same locust): when the reference was fast and this server, run
once more after it, was slow again, the machine lets a correct server meet the bound, and the slowness is
this server's (a server that keeps the CPU busy itself, and so starves locust, is judged so, not excused).
When the reference was not fast either, the machine is too busy now: the check waits a little and tries
again; when no try can be judged, that is a fault of the grading, never a deduction. Requests/s and
latencies are reported for information.

The bundles for Gradescope and PrairieLearn hold no solution/, so no reference to run: there a slow run
counts only when locust itself kept time (its timers fired at most LAG_MS late and it waited for a CPU
for at most STARVED of the run: a machine that starves locust starves the server beside it too).
"""

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from autograder import KIT, SOLUTION, machine
from autograder.checks.probes import check, served
from autograder.marks import GraderStarved, expect

USERS, PER_USER = 50, 4  # 200 requests; every user's first request comes at once, as the report's clients did
SLOW_MS = 1000  # the median reply, at most (a correct server beside six CPU hogs at half a CPU: about 200 ms)
REQUEST_TIMEOUT = 10  # seconds: a request that takes longer fails (a hung server must not hang the run)
ATTEMPTS = 3  # tries in which the reference may be slow too, before the grading is a fault
LAG_MS = 500  # without the reference: a run whose generator's timers fired this late does not count
STARVED = 0.3  # nor one whose generator waited for a CPU this share of it
PAUSE = 3.0  # seconds to wait, times the try's number, after a try the machine spoiled (a busy spell may pass)
BACKSTOP = 60  # seconds locust may run at most (200 requests take under 2 s at half a CPU)


@dataclass
class Run:
    """One locust run's summary, and how well locust itself kept time in it (for the report of a fault)."""

    summary: dict
    late_ms: float  # the latest that locust's, or the grader's, timers fired
    waited: float  # the share of the run locust waited for a CPU

    @property
    def fast(self) -> bool:
        """Every request made and answered, the median within the bound: nothing to judge."""
        s = self.summary
        return s["requests"] == USERS * PER_USER and not s["failures"] and s["median_ms"] <= SLOW_MS

    @property
    def kept_time(self) -> bool:
        return self.late_ms <= LAG_MS and self.waited <= STARVED

    def seen(self) -> str:
        """What the run saw, and how the machine treated locust, in words."""
        s, asked = self.summary, USERS * PER_USER
        saw = (
            f"{s['requests']} of {asked} requests, {s['failures']} without a reply, a median of {s['median_ms']:.0f} ms"
        )
        locust = f"locust's timers fired up to {self.late_ms:.0f} ms late, it waited for a CPU {self.waited:.0%} of it"
        return f"{saw}; {locust}"

    def judge(self, why: str) -> None:
        """Deduct for what this slow run saw (why: what rules the machine out); one of these fails."""
        s, asked = self.summary, USERS * PER_USER
        expect(
            not s["failures"],
            f"{s['failures']} of {s['requests']} requests got no reply within {REQUEST_TIMEOUT} s ({why})",
        )
        expect(
            s["requests"] == asked, f"only {s['requests']} of {asked} requests were made within {BACKSTOP} s ({why})"
        )
        expect(
            s["median_ms"] <= SLOW_MS,
            f"under load, the median reply took {s['median_ms']:.0f} ms (at most {SLOW_MS} expected, {why}): is "
            "each reply sent as soon as its request is in?",
        )


@check("load", points=1, optional=2)
@pytest.mark.timeout(ATTEMPTS * 3 * (BACKSTOP + 30))
def check_load(serve, mode, grading, tmp_path):
    """Locust: 50 users x 4 requests

    Locust, 50 users x 4 requests: every reply correct, at once.
    """
    server = serve(mode)
    served(server, when="before the load")  # a server that fails one request would fail them all: no load then
    has_reference = (SOLUTION / f"{mode}_server.py").is_file()  # not in a bundle: it holds no solution/
    run = judged(serve, mode, server, tmp_path) if has_reference else timed(server, tmp_path)
    result = run.summary
    grading.notes[f"load ({mode})"] = (  # only for a run without failures: else the figure means nothing
        f"{result['rps']:.0f} requests/s, median {result['median_ms']:.0f} ms, 90% {result['p90_ms']:.0f} ms"
    )


def timed(server, tmp_path: Path) -> Run:
    """Without the kit's reference: the run that passes; Deduction for one in which locust kept time;
    GraderStarved where none did."""
    for attempt in range(1, ATTEMPTS + 1):
        run = load(server, tmp_path)
        if run.fast:
            return run
        if run.kept_time:
            run.judge("while locust kept time")
        if attempt < ATTEMPTS:
            time.sleep(PAUSE * attempt)
    raise GraderStarved(
        f"locust did not keep time in any of {ATTEMPTS} tries (in the last: {run.seen()}): the grading machine was "
        "too busy to judge the load (grade again)"
    )


def judged(serve, mode: str, server, tmp_path: Path) -> Run:
    """The run that passes; Deduction for one that ruled the machine out; GraderStarved where none could."""
    for attempt in range(1, ATTEMPTS + 1):
        run = load(server, tmp_path)
        if run.fast:
            return run
        server.kill()  # slow: the machine's doing, or this server's? The kit's reference, next, in the same conditions
        baseline = load(serve(mode, reference=True), tmp_path, reference=True)
        if attempt == ATTEMPTS and not baseline.fast:
            break
        server = serve(mode)
        served(server, when="before the load")
        if baseline.fast:
            run = load(server, tmp_path)
            if run.fast:
                return run
            run.judge(
                f"twice, while the kit's reference server, run between them in the same conditions, replied in "
                f"a median of {baseline.summary['median_ms']:.0f} ms"
            )
        time.sleep(PAUSE * attempt)  # the reference was slow too: a busy spell may pass
    raise GraderStarved(
        f"in none of {ATTEMPTS} tries was the kit's reference server, run beside this one in the same conditions, "
        f"fast (in the last, this server: {run.seen()}; the reference: {baseline.seen()}): the grading machine "
        "was too busy to judge the load (grade again)"
    )


def load(server, tmp_path: Path, reference: bool = False) -> Run:
    """A locust run against server, with whether locust kept time; a reply that is wrong (not a timeout)
    deducts at once: no machine makes a server answer wrongly (from the kit's reference: a grader fault)."""
    began = time.monotonic()
    result = run_locust(server, Path(tempfile.mkdtemp(prefix="run-", dir=tmp_path)))
    late = max(result["lag_max_ms"] or 0.0, machine.clock().worst_lateness(began) * 1000)
    waited = (result.get("run_cpu_wait_s") or 0.0) / max(result.get("run_s") or 1.0, 0.1)  # share of the run
    wrong = {error: n for error, n in result["errors"].items() if not timed_out(error)}
    if wrong and reference:
        raise RuntimeError(f"the kit's reference server answered wrongly under load: {wrong}")
    expect(
        not wrong,
        f"{sum(wrong.values())} of {result['requests']} requests failed under load: "
        + "; ".join(f"{count} x {error}" for error, count in wrong.items())[:300],
    )
    return Run(result, late, waited)


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
