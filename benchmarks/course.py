"""How long `course grade` takes for a class, one student at a time and several at once, and whether
the scores are the same.

    python benchmarks/course.py [--students 30] [--jobs 1 2 3]
    python benchmarks/course.py --notebooks [--students 6]

Builds a course in a temporary folder (course init, nbgrader generate_assignment) with STUDENTS
submissions of three kinds in turn: the reference, the release as handed out (nothing filled in), and
the reference with the parent keeping its copy of the client socket. Then runs the whole batch
(`course grade`, every check) once per --jobs value, timed from outside, and compares the CSVs.

--notebooks times the notebooks' autograde alone, three ways in one run: an `nbgrader autograde
--student` command per student (as `course grade` did before), the batch in one process that
`course grade` runs now (`python -m autograder.course autograde`), both with each kernel isolated,
and the batch with the isolation turned off (JUPYTER_DEFAULT_PROVISIONER_NAME=local-provisioner):
the baseline, so that the figures are ratios measured on the same machine at the same time.
"""

import argparse
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

from autograder import SERVER_FILES, SOLUTION  # noqa: E402
from autograder.course import environment  # noqa: E402

NAME = "lab"
KEEPS_SOCKET = ("        conn.close()  # The parent closes its copy of the client socket (important!)\n", "")


def run(*args: object, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**environment(), **(env or {})}
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{' '.join(map(str, args))} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done


def build(course: Path, students: int) -> None:
    run(sys.executable, "-m", "autograder", "course", "init", course, "--assignment", NAME, cwd=KIT)
    run(sys.executable, "-m", "nbgrader", "generate_assignment", NAME, cwd=course)
    for i in range(students):
        folder = course / "submitted" / f"student{i:02d}" / NAME
        folder.mkdir(parents=True)
        kind = i % 3
        source = course / "release" / NAME if kind == 1 else SOLUTION
        for name in SERVER_FILES:
            shutil.copyfile(source / name, folder / name)
        if kind == 2:
            server = folder / "multiprocess_server.py"
            server.write_text(server.read_text().replace(*KEEPS_SOCKET))
        shutil.copyfile(source / "report.ipynb", folder / "report.ipynb")
        (folder / "timestamp.txt").write_text("2026-11-26 10:00:00.000000 UTC")


def notebooks(course: Path, students: int) -> None:
    """The three ways of autograding the class's notebooks, timed in turn."""
    names = [f"student{i:02d}" for i in range(students)]
    batch = [sys.executable, "-m", "autograder.course", "autograde", course, NAME, *names]
    ways = {
        "an nbgrader autograde per student, isolated": [
            [sys.executable, "-m", "nbgrader", "autograde", NAME, "--student", name, "--force"] for name in names
        ],
        "one process for the batch, isolated": [batch],
        "one process for the batch, not isolated (baseline)": [batch],
    }
    seconds = {}
    for way, commands in ways.items():
        env = {"JUPYTER_DEFAULT_PROVISIONER_NAME": "local-provisioner"} if "baseline" in way else None
        start = time.monotonic()
        for command in commands:
            run(*command, cwd=course, env=env)
        seconds[way] = time.monotonic() - start
    base = seconds["one process for the batch, not isolated (baseline)"]
    for way, taken in seconds.items():
        each = taken / students
        print(f"{students} notebooks, {way}: {taken:.1f} s, {each:.2f} s each, {taken / base:.2f}x baseline")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--notebooks", action="store_true", help="time the notebooks' autograde alone")
    args = parser.parse_args()
    python = platform.python_version()
    print(f"machine: {platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {python}")
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp) / "course"
        build(course, args.students)
        if args.notebooks:
            notebooks(course, args.students)
            return
        tables = {}
        for jobs in args.jobs:
            start = time.monotonic()
            run(sys.executable, "-m", "autograder", "course", "grade", course, NAME, "--jobs", jobs, cwd=KIT)
            seconds = time.monotonic() - start
            tables[jobs] = (course / f"server_scores_{NAME}.csv").read_text()
            same = "same scores as --jobs 1" if tables[jobs] == tables[args.jobs[0]] else "DIFFERENT scores"
            print(f"{args.students} submissions, --jobs {jobs}: {seconds / 60:.1f} min ({same})", flush=True)
        print(tables[args.jobs[0]])


if __name__ == "__main__":
    main()
