"""How long grading the reference takes, checks one after another (--jobs 1, as before) and side by
side (the default), and whether its score holds while the CPU is busy.

    python benchmarks/grading.py [--runs N] [--burn K] [--jobs J] [--no-before]

Each run is `python -m autograder grade solution --json ...`, timed from outside; the two ways
alternate, so that both meet the same machine. The baseline, timed in the same command, is the
grader's fixed cost: `grade solution --mode single --check echo` (start-up, one server, one check).
--burn K keeps K other processes spinning on the CPU meanwhile (as `stress-ng --cpu K` would), to
show that the score does not depend on a quiet machine; --no-before times the side-by-side way only.
"""

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KIT = Path(__file__).resolve().parent.parent


def burn(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def grade(*options: str) -> tuple[float, float]:
    """(seconds, score) of one grading run of the reference."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        start = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "autograder", "grade", "solution", "--json", str(out), *options],
            cwd=KIT,
            capture_output=True,
            text=True,
        )
        seconds = time.monotonic() - start
        if run.returncode != 0:
            sys.exit(f"grading failed:\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
        return seconds, json.loads(out.read_text())["score"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="full gradings of each way (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=4, help="side by side: the grader's --jobs (default: %(default)s)")
    parser.add_argument("--before", action=argparse.BooleanOptionalAction, default=True, help="also --jobs 1")
    parser.add_argument("--burn", type=int, default=0, help="CPU-burning processes meanwhile (default: %(default)s)")
    args = parser.parse_args()
    python = platform.python_version()
    print(f"machine: {platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {python}")
    stop = multiprocessing.Event()
    burners = [multiprocessing.Process(target=burn, args=(stop,)) for _ in range(args.burn)]
    for b in burners:
        b.start()
    try:
        baseline, _ = grade("--mode", "single", "--check", "echo")
        ways = {"one after another (--jobs 1)": 1} if args.before else {}
        ways[f"side by side (--jobs {args.jobs})"] = args.jobs
        timed: dict[str, list] = {name: [] for name in ways}
        for _ in range(args.runs):
            for name, jobs in ways.items():
                timed[name].append(grade("--jobs", str(jobs)))
    finally:
        stop.set()
        for b in burners:
            b.join()
    print(f"baseline (one check): {baseline:.1f} s; {args.runs} full gradings each way, {args.burn} CPU burners")
    for name, runs in timed.items():
        times = [seconds for seconds, _ in runs]
        median = statistics.median(times)
        print(f"  {name}: median {median:.1f} s, worst {max(times):.1f} s; scores {[score for _, score in runs]}")
    if args.before:
        first, second = (statistics.median(seconds for seconds, _ in runs) for runs in timed.values())
        print(f"  side by side takes {second / first:.2f}x the time of one after another")


if __name__ == "__main__":
    main()
