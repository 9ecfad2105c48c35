"""The course workflow on nbgrader: a course folder set up for .py files, a release with no solution
in it, and batch grading of the servers into nbgrader's gradebook beside the notebook's own grades.

nbgrader processes notebooks only. Left to itself it would copy the .py files into the release as
they are (solutions included), overwrite the students' .py files with the instructor's at autograde,
and copy those into the feedback. The course folder that `init` writes prevents all three.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from autograder import KIT, OPTIONAL_FILES, SERVER_FILES, SOLUTION, release

NOTEBOOK = "report"  # report.ipynb: the analysis notebook
SERVER_CELL = "server_score"  # its locked task cell that holds the servers' score
VALID_EXTENSIONS = [".ipynb", ".py", ".json", ".csv", ".png", ".md"]  # what zip_collect keeps

CONFIG = '''"""nbgrader configuration of a Concurrency Lab course, written by `python -m autograder course init`."""

import functools
import os
import sys

sys.path.insert(0, {kit!r})  # the kit, for the release hook below
from autograder.course import release_hook  # noqa: E402

c = get_config()  # noqa: F821
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = "concurrency-lab"

# nbgrader copies .py files into the release as they are: strip their solution regions with
# nbgrader's ClearSolutions and verify the release; a release holding solution code is removed.
c.GenerateAssignment.post_convert_hook = functools.partial(release_hook, root=c.CourseDirectory.root)

# Students write these .py files: autograde must not overwrite them with the instructor's copies
# (nor generate_feedback hand the instructor's copies back to students).
c.Autograde.exclude_overwriting = {{{name!r}: {files!r}}}

# zip_collect keeps only these extensions (by default, notebooks only).
c.FileNameCollectorPlugin.valid_ext = {extensions!r}

# A cell that runs longer fails; output on stderr matching the pattern (warnings) does not zero a grade cell.
c.Execute.timeout = 120
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"Warning"
'''


class CourseError(Exception):
    """The course folder or a command on it is not right (the message says what to do)."""


def init(course: Path, name: str) -> Path:
    """Create an nbgrader course folder with source/NAME/ from the kit's solution."""
    if (course / "nbgrader_config.py").exists():
        raise CourseError(f"{course} already holds an nbgrader_config.py: choose another folder")
    source = course / "source" / name
    source.mkdir(parents=True, exist_ok=True)
    for path in sorted(SOLUTION.glob("*.py")) + sorted(SOLUTION.glob("*.ipynb")):
        shutil.copyfile(path, source / path.name)
    config = CONFIG.format(kit=str(KIT), name=name, files=[*SERVER_FILES, *OPTIONAL_FILES], extensions=VALID_EXTENSIONS)
    (course / "nbgrader_config.py").write_text(config)
    return course


def release_hook(assignment: str, student: str, notebooks: list, root: str) -> None:
    """nbgrader's post-convert hook for generate_assignment: strip and verify the .py files of the release.

    nbgrader logs and ignores an exception from a hook, so a failure removes the release and raises
    SystemExit, which nbgrader does not catch: a release with solution code is never left behind.
    """
    released = Path(root) / "release" / assignment
    try:
        for path in sorted(released.rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            if release.BEGIN in source:
                skeleton = release.strip_solutions(source)
                release.verify(path.name, source, skeleton)
                path.write_text(skeleton, encoding="utf-8")
        leaks = verify_no_solution(released)
        if leaks:
            raise release.ReleaseError(f"solution code left in {', '.join(leaks)}")
    except release.ReleaseError as exc:
        shutil.rmtree(released, ignore_errors=True)
        print(f"[Concurrency Lab] release of {assignment} removed: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def verify_no_solution(folder: Path) -> list[str]:
    """The files under folder that hold a solution or hidden-test marker, or that give a solution file
    away (release.gives_away)."""
    leaks = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".py", ".ipynb", ".md", ".txt")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if any(marker in text for marker in release.MARKERS) or release.gives_away(path.name, text):
            leaks.append(str(path.relative_to(folder)))
    return leaks


@dataclass
class StudentResult:
    student: str
    score: float | None  # None: not gradable (the reason is in note)
    max_score: float
    categories: dict[str, tuple[float, float]]
    note: str


def environment() -> dict[str, str]:
    """os.environ with this Python's scripts first on PATH: nbgrader runs `alembic` by name."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path}


def nbgrader(course: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run an nbgrader command in the course folder; CourseError with its last lines if it fails."""
    run = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment(),
    )
    if run.returncode != 0:
        tail = "\n".join((run.stdout + run.stderr).strip().splitlines()[-15:])
        raise CourseError(f"nbgrader {' '.join(args)} failed:\n{tail}")
    return run


def grade_server(submission: Path, out: Path, options: list[str]) -> tuple[dict | None, str]:
    """(results.json, printed report) of the autograder on one submission, as a subprocess of its own;
    (None, reason) when it could not be graded."""
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "autograder", "grade", str(submission), "--json", str(out)]
    run = subprocess.run(
        [*command, "--require-isolation", *options],
        cwd=KIT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "120"},
    )
    if run.returncode == 0 and out.exists():
        return json.loads(out.read_text()), run.stdout
    reason = (run.stderr.strip().splitlines() or run.stdout.strip().splitlines() or ["no output"])[-1]
    return None, f"not gradable: {reason.removeprefix('not gradable: ')}"


def record(course: Path, name: str, student: str, score: float, comment: str) -> None:
    """Write the servers' score and feedback into the notebook's reserved task cell, in gradebook.db."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        try:
            grade = gradebook.find_grade(SERVER_CELL, NOTEBOOK, name, student)
            comment_entry = gradebook.find_comment(SERVER_CELL, NOTEBOOK, name, student)
        except MissingEntry:
            raise CourseError(
                f"the gradebook has no '{SERVER_CELL}' cell of {NOTEBOOK}.ipynb for {student}: "
                "was the notebook submitted and autograded?"
            ) from None
        grade.manual_score = score
        comment_entry.manual_comment = comment
        gradebook.db.commit()


def grade(
    course: Path, name: str, students: list[str] | None = None, options: list[str] | None = None, on_student=None
):
    """Autograde the notebooks with nbgrader, then the servers of each student one at a time, and
    record the servers' scores in the gradebook. Returns the StudentResults."""
    submitted = course / "submitted"
    found = sorted(p.name for p in submitted.iterdir() if (p / name).is_dir()) if submitted.is_dir() else []
    students = students or found
    missing = [s for s in students if s not in found]
    if missing or not students:
        raise CourseError(f"no submission of {name} in {submitted} for {', '.join(missing) or 'anyone'}")
    results = []
    for student in students:
        nbgrader(course, "autograde", name, "--student", student, "--force")
        out = course / "autograder" / name / student
        previous = out / "results.json"
        backup = previous.read_bytes() if previous.exists() else None
        data, report = grade_server(submitted / student / name, out / "results.new.json", options or [])
        if data is None:  # keep an earlier good score
            if backup is not None:
                data = json.loads(backup)
                note = f"{report} (kept the earlier score)"
            else:
                results.append(StudentResult(student, None, 0, {}, report))
                (out / "report.txt").write_text(report + "\n")
                if on_student:
                    on_student(results[-1])
                continue
        else:
            (out / "results.new.json").replace(previous)
            (out / "report.txt").write_text(report)
            note = ""
        categories = category_totals(data)
        comment = feedback_comment(data)
        record(course, name, student, data["score"], comment)
        write_feedback(course, name, student, out)
        results.append(
            StudentResult(student, data["score"], sum(t["max_score"] for t in data["tests"]), categories, note)
        )
        if on_student:
            on_student(results[-1])
    write_csv(course / f"server_scores_{name}.csv", results)
    return results


def category_totals(data: dict) -> dict[str, tuple[float, float]]:
    totals: dict[str, tuple[float, float]] = {}
    for test in data["tests"]:
        earned, possible = totals.get(test["tags"][0], (0.0, 0.0))
        totals[test["tags"][0]] = (earned + test["score"], possible + test["max_score"])
    return totals


def feedback_comment(data: dict) -> str:
    """The gradebook comment: the score, then one line per check that lost points."""
    lost = [t for t in data["tests"] if t["score"] < t["max_score"]]
    lines = [f"Servers: {data['score']:g} / {sum(t['max_score'] for t in data['tests']):g} points."]
    lines += [f"- {t['number']} {t['name']} ({t['score']:g}/{t['max_score']:g}): {t['output']}" for t in lost]
    return "\n".join(lines)


def write_feedback(course: Path, name: str, student: str, out: Path) -> None:
    """The check table beside the autograded notebook: `nbgrader generate_feedback` then hands it to the
    student with nbgrader's own feedback (feedback/STUDENT/NAME/server-checks.txt)."""
    folder = course / "autograded" / student / name
    shutil.copyfile(out / "report.txt", folder / "server-checks.txt")


def write_csv(path: Path, results: list[StudentResult]) -> None:
    from autograder.rubric import CATEGORIES

    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["student", "score", "max_score", *CATEGORIES, "note"])
        for r in results:
            cells = [f"{r.categories[c][0]:g}" if c in r.categories else "" for c in CATEGORIES]
            writer.writerow([r.student, "" if r.score is None else f"{r.score:g}", f"{r.max_score:g}", *cells, r.note])
