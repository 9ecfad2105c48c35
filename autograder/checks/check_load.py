"""Load: a locust run of the kit's locustfile against each mode. 3 points.

locust runs as a subprocess: importing it here would monkey-patch socket and threading (gevent).
The run is a set number of requests (USERS users, PER_USER requests each), not a time window: how many
requests a busy machine lets locust make in some seconds is the machine's doing, not the server's. Users
wait THINK seconds between two requests: fewer requests a second than a correct server serves on a busy
machine, so that a reply waits for the server, not in a queue that grows with the machine's load. The
grade asks for the server's part alone: every reply correct, and replies sent at once (the median
within SLOW_MS: benchmarks/results/load_pairs.md has the reference's medians on a busy machine).

A run that was not that fast is judged beside the kit's reference server of the mode: a new server of the
submission and the reference are loaded at the same time, each by its own locust, in the same conditions
(same isolation, same network, same locustfile), so that whatever else the machine does meets both. When
the reference was fast, the submission is judged against it: every request answered, and a median within
SLOW_MS or within RATIO times the reference's. When the reference was not fast, the machine is busy, or
the submission keeps it busy: a median over RATIO times the reference's still counts (whatever the machine
did, it did to both), anything else cannot be judged, and the check waits a little and tries again; when
no try can be judged, that is a fault of the grading, never a deduction.
Requests/s and latencies are reported for information.

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
SLOW_MS = 1000  # the median reply, at most (the reference's on a busy machine: benchmarks/results/load_pairs.md)
REQUEST_TIMEOUT = 10  # seconds: a request that takes longer fails (a hung server must not hang the run)
ATTEMPTS = 3  # tries in which the reference may be slow too, before the grading is a fault
RATIO = 2.5  # beside the reference, loaded at the same time: a median this many times its median is slow
LAG_MS = 500  # without the reference: a run whose generator's timers fired this late does not count
STARVED = 0.3  # nor one whose generator waited for a CPU this share of it
PAUSE = 3.0  # seconds to wait, times the try's number, after a try the machine spoiled (a busy spell may pass)
BACKSTOP = 60  # seconds locust may run at most (200 requests take about 6 s, mostly the users' waits)
THINK = (1.0, 2.0)  # seconds a user waits between two requests: 33 requests/s offered, under what a correct
# server of any mode serves on a busy machine, so that the median is the reply's own time, not a queue's (at
# 0.05-0.1 s, a user's next request came as soon as its reply did: the median measured the machine's CPU)


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

    def judge(self, why: str, bound: float = SLOW_MS) -> None:
        """Deduct for what this slow run saw (why: what rules the machine out); one of these fails, unless the
        median is within bound (a server as fast as the reference beside it)."""
        s, asked = self.summary, USERS * PER_USER
        expect(
            not s["failures"],
            f"{s['failures']} of {s['requests']} requests got no reply within {REQUEST_TIMEOUT} s ({why})",
        )
        expect(
            s["requests"] == asked, f"only {s['requests']} of {asked} requests were made within {BACKSTOP} s ({why})"
        )
        self.judge_median(why, bound)

    def judge_median(self, why: str, bound: float, ask: str = "is each reply sent as soon as its request is in?"):
        """Deduct unless the median is within bound (why: what rules the machine out; ask: the question to the
        student)."""
        median = self.summary["median_ms"]
        expect(
            median <= bound,
            f"under load, the median reply took {median:.0f} ms (at most {bound:.0f} expected, {why}): {ask}",
        )

    def judge_beside(self, reference: "Run") -> bool:
        """Whether this run, beside the reference loaded at the same time, could be judged; Deduction for what
        it saw. Where the reference was fast: every request answered, the median within SLOW_MS or RATIO times
        the reference's. Where the reference was slow too, the machine was busy, or this server kept it busy:
        whatever it did, it did to both, so only a median over RATIO times the reference's is judged (a server
        that keeps the CPU busy itself slows the reference, and itself more)."""
        median = reference.summary["median_ms"]
        bound = max(SLOW_MS, RATIO * median)
        if reference.fast:
            self.judge(
                f"twice; the second time, the kit's reference server, loaded at the same time in the same "
                f"conditions, answered all {USERS * PER_USER} requests in a median of {median:.0f} ms",
                bound,
            )
            return True
        self.judge_median(
            f"twice; the second time, over {RATIO:g} times the median of the kit's reference server, loaded at the "
            f"same time in the same conditions, which was slow too: {median:.0f} ms",
            bound,
            "is each reply sent as soon as its request is in, and does nothing else keep the CPU busy?",
        )
        return False


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
        (run,) = load([server], tmp_path)
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
    """The run that passes; Deduction for one slow beside the reference (Run.judge_beside); GraderStarved where
    no try could be judged."""
    (run,) = load([server], tmp_path)
    if run.fast:
        return run
    for attempt in range(1, ATTEMPTS + 1):
        server.kill()  # slow: the machine's doing, or this server's? A new one beside the kit's reference
        server = serve(mode)
        served(server, when="before the load")
        reference = serve(mode, reference=True)
        run, baseline = load([server, reference], tmp_path)
        reference.kill()
        if run.judge_beside(baseline):
            return run
        if attempt < ATTEMPTS:
            time.sleep(PAUSE * attempt)  # the reference was slow too: a busy spell may pass
    raise GraderStarved(
        f"in none of {ATTEMPTS} tries was the kit's reference server, loaded beside this one at the same time, "
        f"fast (in the last, this server: {run.seen()}; the reference: {baseline.seen()}): the grading machine "
        "was too busy to judge the load (grade again)"
    )


def load(servers: list, tmp_path: Path) -> list[Run]:
    """A locust run against each server, all at the same time, with whether locust kept time; a reply that is
    wrong (not a timeout) deducts at once: no machine makes a server answer wrongly (from the kit's reference,
    the last of servers after the first: a grader fault)."""
    began = time.monotonic()
    summaries = run_locusts(servers, tmp_path)
    late_here = machine.clock().worst_lateness(began) * 1000
    runs = []
    for server, result in zip(servers, summaries, strict=True):
        late = max(result["lag_max_ms"] or 0.0, late_here)
        waited = (result.get("run_cpu_wait_s") or 0.0) / max(result.get("run_s") or 1.0, 0.1)  # share of the run
        wrong = {error: n for error, n in result["errors"].items() if not timed_out(error)}
        if wrong and server is not servers[0]:
            raise RuntimeError(f"the kit's reference server answered wrongly under load: {wrong}")
        expect(
            not wrong,
            f"{sum(wrong.values())} of {result['requests']} requests failed under load: "
            + "; ".join(f"{count} x {error}" for error, count in wrong.items())[:300],
        )
        runs.append(Run(result, late, waited))
    return runs


def timed_out(error: str) -> bool:
    """Whether a locust error is a request that ran out of time (the one error a busy machine can cause)."""
    return "timed out" in error.lower() or "timeout" in error.lower()


def run_locusts(servers: list, tmp_path: Path) -> list[dict]:
    """The summary of a headless locust run of the kit's locustfile against each server, all started at once
    (each in a folder of its own under tmp_path, where its log stays)."""
    runs = []
    try:
        for server in servers:
            folder = Path(tempfile.mkdtemp(prefix="run-", dir=tmp_path))
            runs.append((folder, start_locust(server, folder)))
        for _, locust in runs:
            locust.wait(timeout=BACKSTOP + 25)
    finally:
        for _, locust in runs:
            if locust.poll() is None:  # only after a timeout, or an exception here: it is ours, unreaped
                locust.kill()
                locust.wait()
    return [summary_of(folder) for folder, _ in runs]


def start_locust(server, folder: Path) -> subprocess.Popen:
    """A headless locust run of the kit's locustfile against server, its summary and its log in folder."""
    command = [sys.executable, "-m", "locust", "-f", str(KIT / "locustfile.py"), "--headless", "--only-summary"]
    command += ["--host", f"http://{server.host}:{server.port}", "-u", str(USERS), "-r", "1000"]
    command += ["--requests-per-user", str(PER_USER), "-t", f"{BACKSTOP}s"]
    command += ["--min-wait", f"{THINK[0]:g}", "--max-wait", f"{THINK[1]:g}"]
    command += ["--request-timeout", str(REQUEST_TIMEOUT), "--summary-file", str(folder / "summary.json")]
    command += ["--stop-timeout", "5", "--exit-code-on-error", "0"]
    command, fds = server.in_network(command)  # where the server has a network of its own, locust runs in it
    with open(folder / "locust.log", "wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder, pass_fds=fds)


def summary_of(folder: Path) -> dict:
    summary = folder / "summary.json"
    if not summary.exists():
        raise RuntimeError(f"locust wrote no summary: {(folder / 'locust.log').read_text()[-1000:]}")
    return json.loads(summary.read_text())
