"""The load of the report: each user requests GET / and then waits 1 to 5 s, again and again.

Every reply is checked: status 200, and a body that echoes the request line. A request that takes
longer than --request-timeout seconds fails, instead of hanging its user forever.

With a server listening on port 8890:
    locust -f locustfile.py --host http://127.0.0.1:8890                  (web UI on http://localhost:8089)
    locust -f locustfile.py --host http://127.0.0.1:8890 --headless -u 50 -r 10 -t 30s

Options of this file (also in the web UI): --min-wait and --max-wait (seconds between two requests
of one user; 1 and 5 by default, as in the report), --request-timeout (seconds, 10 by default),
--summary-file PATH (write the exact final figures as JSON when locust quits).
"""

import json
import os
import random
import time

import gevent
from locust import HttpUser, between, events, task
from locust.runners import WorkerRunner
from locust.stats import StatsError

ECHO = b"GET / HTTP/1.1\r\n"  # how the body of a correct reply to our request begins


@events.init_command_line_parser.add_listener
def add_options(parser) -> None:
    parser.add_argument(
        "--min-wait", type=float, default=1.0, help="shortest wait between two requests of a user, in seconds"
    )
    parser.add_argument(
        "--max-wait", type=float, default=5.0, help="longest wait between two requests of a user, in seconds"
    )
    parser.add_argument("--request-timeout", type=float, default=10.0, help="a request taking longer fails, in seconds")
    parser.add_argument(
        "--requests-per-user",
        type=int,
        default=0,
        include_in_web_ui=False,
        help="each user makes this many requests, then the run ends once every user has (0: no end but -t)",
    )
    parser.add_argument(
        "--summary-file", default="", include_in_web_ui=False, help="write the final figures as JSON to this file"
    )


class ReportUser(HttpUser):
    wait_time = between(1, 5)  # the report's; --min-wait and --max-wait change it
    finished = 0  # users that made their --requests-per-user requests

    def on_start(self) -> None:
        options = self.environment.parsed_options
        if options is not None:
            if not 0 <= options.min_wait <= options.max_wait:
                raise ValueError(
                    f"need 0 <= --min-wait <= --max-wait, not {options.min_wait:g} and {options.max_wait:g}"
                )
            self.wait_time = lambda: random.uniform(options.min_wait, options.max_wait)

    @task
    def index(self) -> None:
        options = self.environment.parsed_options
        timeout = options.request_timeout if options is not None else 10.0
        with self.client.get("/", catch_response=True, timeout=timeout) as response:
            if response.error:  # no reply at all (refused, reset, timed out): locust reports the error itself
                pass
            elif response.status_code != 200:
                response.failure(f"status {response.status_code}, expected 200")
            elif not response.content.startswith(ECHO):
                response.failure(f"the body does not echo the request line: it begins {response.content[:40]!r}")
        self.made = getattr(self, "made", 0) + 1
        if options is not None and self.made == options.requests_per_user:
            ReportUser.finished += 1
            if ReportUser.finished >= options.num_users:  # every user is done: the run ends now
                gevent.spawn(self.environment.runner.quit)
            self.wait_time = lambda: 3600.0  # done: waits for the end of the run (a wait, not a task: no stop-timeout)


class Clock:
    """How late this process's own timers fire while it runs: a generator that falls behind (starved of CPU,
    or stopped) delays every request it times, whatever the server does."""

    TICK = 0.05  # seconds

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.lag_max = 0.0
        self.scheduled = scheduled()  # (ran, waited) at the start of the run: the run's own are what follows
        gevent.spawn(self._tick)

    def _tick(self) -> None:
        while True:
            before = time.monotonic()
            gevent.sleep(self.TICK)
            self.lag_max = max(self.lag_max, time.monotonic() - before - self.TICK)


def scheduled() -> tuple[float, float]:
    """(seconds this process ran, seconds it was ready to run but waited for a CPU), over its threads."""
    ran = waited = 0.0
    for task_id in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else ():
        try:
            with open(f"/proc/self/task/{task_id}/schedstat") as stat:
                run_ns, wait_ns, _ = stat.read().split()
        except (OSError, ValueError):
            continue
        ran, waited = ran + int(run_ns) / 1e9, waited + int(wait_ns) / 1e9
    return ran, waited


CLOCK: Clock | None = None


@events.test_start.add_listener
def start_clock(environment, **kwargs) -> None:
    global CLOCK
    CLOCK = Clock()


@events.quitting.add_listener
def write_summary(environment, **kwargs) -> None:
    """The exact final figures: locust's CSV files are written once a second and miss the end of a run."""
    options = environment.parsed_options
    if options is None or not options.summary_file or isinstance(environment.runner, WorkerRunner | None):
        return  # with --processes, the master writes the totals of all workers
    total = environment.runner.stats.total
    ran, waited = scheduled()
    summary = {
        "requests": total.num_requests,
        "failures": total.num_failures,
        "median_ms": total.median_response_time,
        "p90_ms": total.get_response_time_percentile(0.9),
        "average_ms": total.avg_response_time,
        "min_ms": total.min_response_time or 0,
        "max_ms": total.max_response_time,
        "average_size": total.avg_content_length,
        "rps": total.total_rps,
        "failures_per_s": total.total_fail_per_sec,
        "start_time": total.start_time,  # when the figures begin (after --reset-stats: the end of the ramp-up)
        "last_request": total.last_request_timestamp,
        "lag_max_ms": round(CLOCK.lag_max * 1000, 1) if CLOCK else None,  # how late its own timers fired, at worst
        "run_s": round(time.monotonic() - CLOCK.started, 3) if CLOCK else None,
        "cpu_s": round(ran, 3),  # of this process
        "cpu_wait_s": round(waited, 3),  # ready to run, waiting for a CPU (or a CPU quota): the machine's doing
        "run_cpu_wait_s": round(waited - CLOCK.scheduled[1], 3) if CLOCK else None,  # of it, during the run
        "errors": {StatsError.parse_error(e.error): e.occurrences for e in environment.runner.stats.errors.values()},
    }
    text = json.dumps(summary, indent=2)  # before opening the file: a failure leaves no half-written file
    with open(options.summary_file, "w", encoding="utf-8") as file:
        file.write(text)
