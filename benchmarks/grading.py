"""Whether a busy machine changes the grade of the reference (it must not), and what it costs in time.

    python benchmarks/grading.py [--runs N] [--conditions quiet half hogs ...] [--hogs K] [--out FILE]

Each run is `python -m autograder grade solution --json ...` (every check, hidden ones included, with
isolation), timed from outside, with its peak memory (the largest resident set of the grading's whole
process tree, sampled every 0.2 s). The conditions alternate run by run, so that each meets the same
machine:
  quiet  the machine as it is;
  half   the grading inside a CPU quota of half a CPU (cgroup), as Gradescope's default container;
  one    inside a quota of one CPU;
  hogs   beside K processes that spin on the CPU machine-wide (6 by default, as `stress-ng --cpu 6`).
The baseline is the quiet median; each condition's time is given as a ratio to it. The figures go to
--out (benchmarks/results/grading.md by default) with the command, the machine and the date: the
README points there instead of retyping them. half and one need root and a writable cgroup CPU controller.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil

KIT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(KIT))

from provenance import commit, publish  # noqa: E402  (a module beside this one)

from autograder import machine  # noqa: E402  (the kit's own CPU quota)
from autograder.harness import launcher  # noqa: E402

CONDITIONS = ("quiet", "half", "one", "hogs")


def peak_memory(proc: subprocess.Popen) -> int:
    """Sample the resident memory of proc's tree until it ends; the largest sum seen, in bytes."""
    peak = 0
    while proc.poll() is None:
        total = 0
        try:
            root = psutil.Process(proc.pid)
            for p in [root, *root.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    continue
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(0.2)
    return peak


def grade(condition: str, hogs: int) -> dict:
    """One grading of the reference under condition: its seconds, score, peak memory and whether it faulted."""
    quota = None
    spinning: list[subprocess.Popen] = []
    prefix: list[str] = []
    if condition in ("half", "one"):
        quota = machine.CpuQuota(0.5 if condition == "half" else 1.0, f"concurrency-lab-bench-{uuid.uuid4().hex[:8]}")
        prefix = [*launcher(cgroups=[quota.path]), "--"]
    if condition == "hogs":
        spinning = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(hogs)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "results.json"
            start = time.monotonic()
            run = subprocess.Popen(
                [*prefix, sys.executable, "-m", "autograder", "grade", "solution", "--json", str(out)],
                cwd=KIT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            memory = peak_memory(run)
            seconds = time.monotonic() - start
            results = json.loads(out.read_text()) if out.exists() else {"score": None, "output": "no results"}
            lost = [
                f"{t['number']} {t['name']}: {t['output']}"
                for t in results.get("tests", [])
                if t["score"] < t["max_score"]
            ]
            return {
                "seconds": seconds,
                "score": results["score"],
                "lost": lost,
                "fault": run.returncode != 0 or "not a grade" in results.get("output", ""),
                "memory": memory,
            }
    finally:
        for proc in spinning:
            proc.kill()
            proc.wait()
        if quota is not None:
            quota.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="gradings per condition (default: %(default)s)")
    parser.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=["quiet", "half", "hogs"])
    parser.add_argument("--hogs", type=int, default=6, help="CPU hogs of the hogs condition (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=KIT / "benchmarks" / "results" / "grading.md")
    args = parser.parse_args()
    if "quiet" not in args.conditions:
        args.conditions.insert(0, "quiet")  # the baseline
    runs: dict[str, list[dict]] = {c: [] for c in args.conditions}
    for i in range(args.runs):
        for condition in args.conditions:
            runs[condition].append(grade(condition, args.hogs))
            done = runs[condition][-1]
            print(f"run {i + 1}, {condition}: {done['score']} in {done['seconds']:.1f} s", flush=True)
    baseline = statistics.median(r["seconds"] for r in runs["quiet"])
    command = "python benchmarks/grading.py " + " ".join(sys.argv[1:])
    lines = [
        "# Grading the reference on a busy machine",
        "",
        f"`{command.strip()}`, {datetime.date.today()}: {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {machine.cpus():g} CPUs for the grader, "
        f"the kit at {commit()}. "
        f"{args.runs} full gradings per condition (every check, hidden ones included, with isolation), the "
        "conditions alternating. Written by the benchmark; do not edit by hand.",
        "",
        "| condition | scores | grader faults | median time | worst time | time / quiet | peak memory |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    names = {"quiet": "quiet", "half": "half a CPU", "one": "one CPU", "hogs": f"beside {args.hogs} CPU hogs"}
    for condition, done in runs.items():
        times = [r["seconds"] for r in done]
        scores = sorted({str(r["score"]) for r in done})
        median = statistics.median(times)
        lines.append(
            f"| {names[condition]} | {', '.join(scores)} | {sum(r['fault'] for r in done)} | {median:.1f} s | "
            f"{max(times):.1f} s | {median / baseline:.2f}x | {max(r['memory'] for r in done) / 2**20:.0f} MiB |"
        )
    lost = [(names[c], i + 1, line) for c, done in runs.items() for i, r in enumerate(done) for line in r["lost"]]
    if lost:  # a point lost by the reference is a fault of the grader to find: say where
        lines += ["", "What the reference lost:", ""]
        lines += [f"- {condition}, run {run}: {line}" for condition, run, line in lost]
    publish(args.out, lines)


if __name__ == "__main__":
    main()
