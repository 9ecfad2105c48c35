"""Does locust measure the server? The sweep's top step beside an independent load tool, in one run.

    python benchmarks/agreement.py [--users 32] [--seconds 5] [--rounds 2] [--workloads none io cpu]

For each workload and each mode, one reference server is started, and the same closed load (USERS
clients that never wait, each asking again as soon as it has its reply) is run against it in turn by
locust (the kit's locustfile, as `compare --sweep` runs it) and by ApacheBench (`ab -c USERS`, a C
program, one connection per request as locust's users make them here; Debian: apt-get install
apache2-utils). Rounds alternate the two. The ratio locust / ab says where locust can measure a
server (about 1) and where it measures itself (well below 1, with locust's CPU near a core).
"""

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

KIT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(KIT))

from servers import ab  # noqa: E402  (benchmarks/servers.py, beside this script)

from autograder.compare import Settings, measure, start  # noqa: E402
from autograder.sweep import STEPS, WORKLOADS, step_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=STEPS[-1], help="clients at once (default: the sweep's top step)")
    parser.add_argument("--seconds", type=float, default=5.0, help="of each measurement (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="measurements per tool and server (default: %(default)s)")
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=["none", "io"])
    parser.add_argument("--modes", nargs="+", default=["single", "multiprocess", "multithread"])
    args = parser.parse_args()
    if not shutil.which("ab"):
        sys.exit("this benchmark needs ApacheBench (ab): apt-get install apache2-utils")
    print(
        f"machine: {platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"load: {args.users} clients that never wait, {args.seconds:g} s, {args.rounds} rounds, median shown")
    print(f"{'workload':<10}{'mode':<14}{'locust':>9}{'ab':>9}  {'locust/ab':>9}  locust CPU  bound (by compare)")
    base = Settings(args.users, args.users, args.seconds, 0, 0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for workload in args.workloads:
            ms, kind = WORKLOADS[workload]
            settings = step_settings(replace(base, work_ms=ms, work_kind=kind), args.users, args.seconds)
            for mode in args.modes:
                server = start(KIT / "solution", mode, settings, work)
                try:
                    by_locust, by_ab, rows = [], [], []
                    for i in range(args.rounds):
                        rows.append(measure(server, mode, settings, work, f"{workload}-{mode}-{i}"))
                        by_locust.append(rows[-1].summary["rps"])
                        by_ab.append(ab(server.port, 10_000_000, args.users, seconds=args.seconds))
                finally:
                    server.kill()
                locust_rps, ab_rps = statistics.median(by_locust), statistics.median(by_ab)
                cpu = statistics.median(row.locust_cpu for row in rows)
                bounds = "/".join(sorted({row.bound for row in rows}))
                print(
                    f"{workload:<10}{mode:<14}{locust_rps:>9.0f}{ab_rps:>9.0f}  {locust_rps / ab_rps:>9.2f}  "
                    f"{cpu:>10.0%}  {bounds}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
