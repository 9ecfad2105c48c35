"""How far apart the load check's medians of two correct servers fall, loaded one after the other (the
rule the check had) and loaded at the same time (the rule it has): the check deducts for a median above
RATIO times the reference's, so RATIO must lie above any ratio two correct servers show.

    python benchmarks/load_pairs.py [--pairs N] [--mode MODE] [--conditions quiet hogs bursts] [--out FILE]

Each pair is two reference servers of the mode (the kit's solution/, no isolation), each loaded by the
check's own locust run (50 users x 4 requests), first one after the other, then both at the same time.
The ratio of a pair is its larger median over its smaller. The conditions alternate pair by pair:
  quiet   the machine as it is;
  hogs    beside K processes that spin on the CPU (as `stress-ng --cpu K`);
  bursts  beside K processes that spin and sleep in turns of 0.2 to 2 s at random (busy spells that come
          and go: what sets one run apart from the next);
  gradings  beside G gradings of the reference's mode (`python -m autograder grade solution --mode MODE`,
          one after another in each of G loops), as the kit's own test suite and a class's batch run them.
The figures go to --out (benchmarks/results/load_pairs.md by default) with the command, the machine and
the date.
"""

import argparse
import datetime
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

KIT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(KIT))

from provenance import commit, publish  # noqa: E402  (a module beside this one)

from autograder import MODES, SOLUTION  # noqa: E402
from autograder.checks import check_load  # noqa: E402
from autograder.harness import Server  # noqa: E402

CONDITIONS = ("quiet", "hogs", "bursts", "gradings")
BURSTS = "import random, time\nwhile True:\n    end = time.monotonic() + random.uniform(0.2, 2)\n    while time.monotonic() < end: pass\n    time.sleep(random.uniform(0.2, 2))\n"  # noqa: E501


def medians(servers: list[Server], folder: Path) -> list[float]:
    """The median reply of each server, all loaded at the same time by the check's locust runs."""
    return [summary["median_ms"] for summary in check_load.run_locusts(servers, folder)]


class Gradings:
    """G loops, each grading the reference's mode again and again, each grading in a session of its own."""

    def __init__(self, mode: str, loops: int):
        self.command = [sys.executable, "-m", "autograder", "grade", "solution", "--mode", mode]
        self.running: list[subprocess.Popen] = []
        self.stopped, self.lock = threading.Event(), threading.Lock()
        self.loops = [threading.Thread(target=self.loop, daemon=True) for _ in range(loops)]

    def __enter__(self) -> "Gradings":
        for loop in self.loops:
            loop.start()
        if self.loops:
            time.sleep(5)  # the gradings under way
        return self

    def loop(self) -> None:
        while True:
            with self.lock:  # none starts once the loops are stopped
                if self.stopped.is_set():
                    return
                grading = subprocess.Popen(
                    self.command, cwd=KIT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
                )
                self.running.append(grading)
            while grading.poll() is None:  # reaped here, or, once the loops stop, by __exit__ alone
                if self.stopped.wait(0.5):
                    return

    def __exit__(self, *_) -> None:
        with self.lock:
            self.stopped.set()
        for loop in self.loops:
            loop.join()
        for grading in self.running:
            if grading.poll() is None:  # unreaped: its pid is still its group's
                os.killpg(grading.pid, signal.SIGINT)  # a grading stops its servers on Ctrl-C
                try:
                    grading.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(grading.pid, signal.SIGKILL)
                    grading.wait()


def pair(mode: str, condition: str, hogs: int, beside: int) -> dict:
    """One pair's medians, one after the other and at the same time, in the condition."""
    code = {"hogs": "while True: pass", "bursts": BURSTS}.get(condition)
    busy = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(hogs if code else 0)]
    servers: list[Server] = []
    try:
        with (
            Gradings(mode, beside if condition == "gradings" else 0),
            tempfile.TemporaryDirectory() as tmp,
        ):
            for _ in range(2):
                servers.append(Server(SOLUTION / f"{mode}_server.py", ["--port", "0"], log_dir=Path(tmp)).start())
            apart = [medians([server], Path(tmp))[0] for server in servers]
            together = medians(servers, Path(tmp))
    finally:
        for server in servers:
            server.kill()
        for proc in busy:
            proc.kill()
            proc.wait()
    return {"apart": apart, "together": together}


def ratio(two: list[float]) -> float:
    return max(two) / max(min(two), 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=10, help="pairs per condition (default: %(default)s)")
    parser.add_argument("--mode", choices=MODES, default="multiprocess", help="(default: %(default)s)")
    parser.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=list(CONDITIONS))
    parser.add_argument("--hogs", type=int, default=6, help="busy processes of hogs and bursts (default: %(default)s)")
    parser.add_argument("--gradings", type=int, default=2, help="gradings beside (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=KIT / "benchmarks" / "results" / "load_pairs.md")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {c: [] for c in args.conditions}
    for i in range(args.pairs):
        for condition in args.conditions:
            runs[condition].append(pair(args.mode, condition, args.hogs, args.gradings))
            done = runs[condition][-1]
            print(f"pair {i + 1}, {condition}: apart {done['apart']}, together {done['together']}", flush=True)
    command = "python benchmarks/load_pairs.py " + " ".join(sys.argv[1:])
    lines = [
        "# Two correct servers under the load check, apart and together",
        "",
        f"`{command.strip()}`, {datetime.date.today()}: {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, the kit at {commit()}. {args.pairs} pairs "
        f"of {args.mode} reference servers per condition ({args.hogs} busy processes in hogs and bursts, "
        f"{args.gradings} in gradings), each "
        "loaded by the check's locust run one after the other, then both at the same time. The ratio of a pair is "
        f"its larger median over its smaller; the check deducts above {check_load.RATIO:g} times the reference's "
        "median. Written by the benchmark; do not edit by hand.",
        "",
        "| condition | medians | ratio apart: median | worst | ratio together: median | worst |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for condition, done in runs.items():
        every = [m for r in done for m in r["apart"] + r["together"]]
        apart = [ratio(r["apart"]) for r in done]
        together = [ratio(r["together"]) for r in done]
        lines.append(
            f"| {condition} | {min(every):.0f} to {max(every):.0f} ms | {statistics.median(apart):.2f} | "
            f"{max(apart):.2f} | {statistics.median(together):.2f} | {max(together):.2f} |"
        )
    publish(args.out, lines)


if __name__ == "__main__":
    main()
