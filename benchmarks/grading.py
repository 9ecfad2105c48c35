"""How long grading the reference takes, and whether its score holds while the CPU is busy.

    python benchmarks/grading.py [--runs N] [--burn K]

Each run is `python -m autograder grade solution --json ...`, timed from outside. The baseline,
timed in the same command, is the grader's fixed cost: `grade solution --mode single --check echo`
(start-up, one server, one check). --burn K keeps K other processes spinning on the CPU meanwhile
(as `stress-ng --cpu K` would), to show that the score does not depend on a quiet machine.
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
    parser.add_argument("--runs", type=int, default=3, help="full gradings to time (default: %(default)s)")
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
        runs = [grade() for _ in range(args.runs)]
    finally:
        stop.set()
        for b in burners:
            b.join()
    times = [seconds for seconds, _ in runs]
    print(f"baseline (one check): {baseline:.1f} s")
    print(f"full grading, {args.runs} runs, {args.burn} CPU burners: scores {[score for _, score in runs]}")
    median = statistics.median(times)
    print(f"  median {median:.1f} s, max {max(times):.1f} s; {median / baseline:.1f}x the baseline")


if __name__ == "__main__":
    main()
