"""What isolating student code costs per grading: the same grading with isolation and without, alternating.

    python benchmarks/isolation.py [--runs N] [--full]

Each run is `python -m autograder grade solution --json ...`, timed from outside, once with the default
isolation (a runner uid and bubblewrap where the machine gives them) and once with `--isolation none`,
in turns so that a change of load on the machine touches both. By default the protocol and concurrency
checks of the three basic modes (a server start per check, where isolation costs); --full grades
everything. Reports the medians and their ratio, and how long one sandboxed server takes to be ready.
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

KIT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(KIT))

from benchmarks.grading import grade  # noqa: E402


def server_start(isolated: bool, runs: int = 20) -> float:
    """Median seconds from starting the single server to its ready line."""
    from autograder import SOLUTION, sandbox
    from autograder.harness import Limits, Server

    isolation = sandbox.detect([]) if isolated else sandbox.TURNED_OFF
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o711)
        for _ in range(runs):
            script, logs = SOLUTION / "single_server.py", Path(tmp) / "logs"
            server = Server(script, ["--port", "0"], logs, limits=Limits(), isolation=isolation)
            start = time.monotonic()
            server.start()
            times.append(time.monotonic() - start)
            server.kill()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="gradings of each kind (default: %(default)s)")
    parser.add_argument("--full", action="store_true", help="every check of every mode, not a part")
    args = parser.parse_args()
    from autograder import sandbox

    python = platform.python_version()
    print(f"machine: {platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {python}")
    print(f"isolation here: {sandbox.detect([]).describe()}")
    part = [] if args.full else ["--mode", "single", "--mode", "multiprocess", "--mode", "multithread"]
    part += [] if args.full else ["--check", "protocol", "--check", "concurrency"]
    isolated, plain = [], []
    for _ in range(args.runs):
        isolated.append(grade(*part)[0])
        plain.append(grade(*part, "--isolation", "none")[0])
    what = "full grading" if args.full else "protocol and concurrency checks of the three modes"
    a, b = statistics.median(isolated), statistics.median(plain)
    print(f"{what}, {args.runs} runs each:")
    print(f"  isolated: median {a:.1f} s (max {max(isolated):.1f} s)")
    print(f"  not isolated: median {b:.1f} s (max {max(plain):.1f} s)")
    print(f"  ratio: {a / b:.2f}x")
    s_iso, s_plain = server_start(True), server_start(False)
    print(f"one server to its ready line: isolated {s_iso * 1000:.0f} ms, not {s_plain * 1000:.0f} ms")


if __name__ == "__main__":
    main()
