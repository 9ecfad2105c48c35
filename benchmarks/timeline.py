"""The handouts' picture of each server at work, measured: docs/figures/timeline.png and timeline.md.

    python benchmarks/timeline.py [--tries 5] [--patience 120] [--out docs/figures]

Runs `python -m autograder compare solution --timeline` (12 clients at once, 50 ms of I/O, then of CPU
work, per request: the default burst) into a temporary folder, and keeps its picture as timeline.png and,
beside it, timeline.md: the command, the kit's commit, the machine (cores, Python, the GIL), the date, the
picture's alt text (what the three servers' lanes show; the times measured are in the run's own lines, below it).
Before each run it waits (up to --patience seconds) for the machine to be quiet, as `compare` judges it; a run
in which other processes still took more than a quarter of the CPUs (`machine busy`) is measured again, up to
--tries runs; the last one is kept, and the file says so when the machine was busy. The picture is measured:
only this script writes it (docs/figures/make.py draws the others, byte for byte).
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KIT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(KIT))

from provenance import commit  # noqa: E402  (a module beside this one)

from autograder import machine  # noqa: E402
from autograder.compare import Burst, look, read_timeline  # noqa: E402

COMMAND = ["-m", "autograder", "compare", "solution", "--timeline"]
NAMES = {"single": "The single server", "multiprocess": "The process server", "multithread": "The thread server"}


def measure(out: Path) -> tuple[list[Burst], dict]:
    """One `compare --timeline` run into out: its bursts, and its JSON."""
    done = subprocess.run([sys.executable, *COMMAND, "--out", str(out)], cwd=KIT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"compare --timeline failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return read_timeline(out / "timeline.json"), json.loads((out / "timeline.json").read_text())


def wait_quiet(patience: float) -> None:
    """Until the machine is quiet (a second's look, as compare takes before a run), or patience seconds."""
    deadline = time.monotonic() + patience
    while not (seen := look()).quiet and time.monotonic() < deadline:
        print(f"waiting: {seen.describe()}", flush=True)
        time.sleep(4)


def alt_text(bursts: list[Burst]) -> str:
    """What the picture shows, for a reader who cannot see it: the panels, then each server's lanes. The times
    measured are in the lines below it, not here: the handouts quote this text, which a new run leaves alone."""
    found = {(b.mode, b.workload.split()[-1]) for b in bursts}
    first = bursts[0]
    clients, work = len(first.served), first.workload.rsplit(" ", 1)[0]

    text = (
        f"Six panels, a server per row and a kind of work per column (I/O, then CPU): {clients} clients connect "
        f"at once, each asking for {work} of work; each request is a bar on the lane of the worker that served "
        "it, from the moment the worker took it to the close, after a dotted wait from connect(). "
    )
    lanes = {
        "single": "has one lane, its one thread: the requests one after another, a staircase, whatever the work",
        "multiprocess": "has a lane per child process, each starting a little after the one before as the "
        f"parent starts it ({first.start_method}); the children's CPU work runs on the cores side by side",
        "multithread": "has a lane per thread in one process: with I/O the requests overlap and end together; "
        "with CPU work the threads take turns under the GIL, each computing in short stretches, and the later "
        "clients are accepted late, as the main thread waits its turn too",
    }
    for mode in ("single", "multiprocess", "multithread"):
        if any(m == mode for m, _ in found):
            text += f"{NAMES[mode]} {lanes[mode]}. "
    return text.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tries", type=int, default=5, help="runs at most, while the machine is busy (default: 5)")
    parser.add_argument("--patience", type=float, default=120, help="seconds to wait for quiet before a run")
    parser.add_argument("--out", type=Path, default=KIT / "docs" / "figures", help="where the two files go")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="concurrency-lab-timeline-bench-") as tmp:
        for attempt in range(1, max(args.tries, 1) + 1):
            wait_quiet(args.patience)
            run = Path(tmp) / f"run-{attempt}"
            bursts, data = measure(run)
            busy = [b for b in bursts if b.machine_busy]
            print(f"run {attempt}: {len(bursts)} bursts, {len(busy)} with the machine busy", flush=True)
            if not busy:
                break
        args.out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run / "timeline.png", args.out / "timeline.png")
        lines = (run / "timeline.md").read_text().split("\n\n", 1)[-1].strip()
    interpreter = data["interpreter"]
    gil = "the GIL enabled" if interpreter["gil"] else "the GIL disabled (a free-threaded build)"
    busy_note = (
        f" The machine was busy in {len(busy)} of the bursts after {attempt} runs: other processes took more than "
        "a quarter of the CPUs (their panels say machine busy)."
        if busy
        else ""
    )
    text = "\n".join(
        [
            "# Each server at work: docs/figures/timeline.png",
            "",
            f"Measured by `python benchmarks/timeline.py`, which ran `python {' '.join(COMMAND)}` (the default "
            f"burst: {len(bursts[0].served)} clients at once, {bursts[0].workload.rsplit(' ', 1)[0]} of I/O, then "
            f"of CPU work, per request), on {datetime.date.today()}: the kit at {commit()}, {platform.system()} "
            f"{platform.machine()}, {os.cpu_count()} cores ({machine.cpus():g} CPUs for the run), "
            f"{interpreter['python']} with {gil}, multiprocess start method {bursts[0].start_method}, "
            f"run {attempt} of at most {args.tries}.{busy_note} Written by the benchmark; do not edit by hand.",
            "",
            f"Alt text: {alt_text(bursts)}",
            "",
            "What each burst measured:",
            "",
            lines,
            "",
        ]
    )
    (args.out / "timeline.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
