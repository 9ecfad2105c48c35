"""The course workflow on nbgrader: a course folder set up for .py files, a release with no solution
in it, and batch grading of the servers into nbgrader's gradebook beside the notebook's own grades.

nbgrader processes notebooks only. Left to itself it would copy the .py files into the release as
they are (solutions included), overwrite the students' .py files with the instructor's at autograde,
and copy those into the feedback. The course folder that `init` writes prevents all three.

Students' code (each notebook's kernel, the servers) runs isolated. Where bubblewrap cannot work, the
course's own setting (c.ConcurrencyLab.isolation in its nbgrader_config.py, notebook.CHOICES) decides,
before anything runs: the batch is refused (the default), or its code runs as runner uids without
bubblewrap, or unisolated; the gradebook comment and the servers' results then say how it ran.
"""

import contextlib
import csv
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass
from pathlib import Path

from autograder import (
    KIT,
    OPTIONAL_FILES,
    SERVER_FILES,
    SOLUTION,
    harness,
    machine,
    notebook,
    release,
    results,
    sandbox,
)

NOTEBOOK = "report"  # report.ipynb: the analysis notebook
SERVER_CELL = "server_score"  # its locked task cell that holds the servers' score
# The servers' results in the course folder: RESULTS/NAME/STUDENT/ (not a name Python could import:
# `python -m autograder` run in the course folder would import a folder named autograder/ instead of the kit).
RESULTS = "server-checks"
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

# Feedback never shows the hidden tests: nbgrader's own feedback keeps them, in the cells and in the
# tracebacks (nbgrader issues #917, #1363); the kit's preprocessor removes both (autograder/feedback.py).
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "autograder.feedback.HideHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

# zip_collect: put each student's zip, named STUDENT.zip, in downloaded/NAME/archive/; the kit's collector
# takes the assignment's files from its top or from the one folder at its top (autograder/zipcollect.py).
c.ZipCollectApp.collector_plugin = "autograder.zipcollect.Collector"
# zip_collect keeps only these extensions (by default, notebooks only).
c.FileNameCollectorPlugin.valid_ext = {extensions!r}

# A student's notebook is student code: nbgrader starts its kernel isolated, through the kit's kernel
# provisioner (bubblewrap, a runner uid of its own where this is root; see autograder/notebook.py).
# jupyter_client reads the default provisioner from this variable (its configuration does not reach it).
os.environ.setdefault("JUPYTER_DEFAULT_PROVISIONER_NAME", {provisioner!r})

# How students' code runs (each notebook's kernel, the servers). bubblewrap needs namespaces, which a JupyterHub
# pod or a container may not give; where it cannot work, this decides (the risk of each choice on its line):
{choices}
c.ConcurrencyLab.isolation = "sandbox"

# A cell that runs longer fails; output on stderr matching the pattern (warnings) does not zero a grade cell.
c.Execute.timeout = 120
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"Warning"
'''


class CourseError(Exception):
    """The course folder or a command on it is not right (the message says what to do)."""


def init(course: Path, name: str) -> bool:
    """Create an nbgrader course folder with source/NAME/ from the kit's solution; or, in a course this
    command made before, write its nbgrader_config.py anew in place (the instructor's isolation choice
    kept; source/ left as it is). True if the course was made, False if it was updated; CourseError for a
    folder that holds another nbgrader configuration."""
    config_path = course / "nbgrader_config.py"
    choice = "sandbox"
    if config_path.exists():
        text = config_path.read_text(errors="replace")
        if not text.startswith(CONFIG.splitlines()[0]):
            raise CourseError(f"{config_path} is not one `course init` wrote: choose another folder")
        found = re.search(r'^c\.ConcurrencyLab\.isolation = "(\w+)"', text, re.MULTILINE)
        choice = found[1] if found else choice
    made = not config_path.exists()
    if made:
        source = course / "source" / name
        source.mkdir(parents=True, exist_ok=True)
        for path in sorted(SOLUTION.glob("*.py")) + sorted(SOLUTION.glob("*.ipynb")):
            shutil.copyfile(path, source / path.name)
    files = [*SERVER_FILES, *OPTIONAL_FILES]
    choices = "\n".join(f"#   {json.dumps(option):10} {risk}" for option, risk in notebook.CHOICES.items())
    config = CONFIG.format(
        kit=str(KIT), name=name, files=files, extensions=VALID_EXTENSIONS, provisioner=notebook.NAME, choices=choices
    )
    kept = f'c.ConcurrencyLab.isolation = "{choice}"'
    config_path.write_text(config.replace('c.ConcurrencyLab.isolation = "sandbox"', kept))
    return made


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
    score: float | None  # of the 100; None: no score (the reason is in note)
    max_score: float
    optional: tuple[float, float]  # (earned, possible) of the optional part, beside the 100
    categories: dict[str, tuple[float, float]]
    note: str

    @property
    def status(self) -> str:
        """graded, not gradable, or grader fault (then the servers have no score, and why is in note)."""
        if self.score is not None:
            return "graded"
        return "grader fault" if self.note.startswith("grader fault") else "not gradable"

    def line(self) -> str:
        """One line for the console: the score, the optional part beside it, and a note."""
        if self.score is None:
            return f"{self.student}: {self.note}"
        text = f"{self.student}: {self.score:g}/{self.max_score:g}"
        if self.optional[1]:
            text += f" (optional part: {self.optional[0]:g}/{self.optional[1]:g})"
        return f"{text} {self.note}".rstrip()


def environment() -> dict[str, str]:
    """os.environ with this Python's scripts first on PATH: nbgrader runs `alembic` by name."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path}


GRADER_FAULT = 3  # python -m autograder grade's exit status when the grader itself failed


INTERRUPTED = "interrupted: not graded"


class Gradings:
    """The gradings of a batch in progress (subprocesses), so that Ctrl-C stops them all at once: none that is
    queued starts, and those under way are stopped as Ctrl-C stops one (SIGTERM: its servers are killed)."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def run(self, command: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
        with self._lock:
            if self.stopping.is_set():
                return subprocess.CompletedProcess(command, INTERRUPTED_EXIT, "", "")
            process = subprocess.Popen(
                command, cwd=KIT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            self._running.add(process)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        finally:
            with self._lock:
                self._running.discard(process)
        return subprocess.CompletedProcess(command, process.returncode, out, err)

    def stop(self, grace: float = 30) -> None:
        """Start nothing more; stop every grading under way and wait up to grace seconds for them to end."""
        with self._lock:
            self.stopping.set()
            running = list(self._running)
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        deadline = time.monotonic() + grace
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()


GRADINGS = Gradings()
INTERRUPTED_EXIT = 130


def grade_server(submission: Path, out: Path, options: list[str], choice: str = "sandbox") -> tuple[dict | None, str]:
    """(results.json, printed report) of the autograder on one submission, as a subprocess of its own
    (its own runner uid, folder and cgroup, so that several can run at once), isolated as the course's
    choice asks (notebook.CHOICES); (None, reason) when it could not be graded. A fault of the grader is
    tried once more, then reported as such."""
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "autograder", "grade", str(submission), "--json", str(out)]
    isolation = {"sandbox": ["--require-isolation"], "uid": [], "none": ["--isolation", "none"]}[choice]
    floor = {sandbox.AT_LEAST: "uid"} if choice == "uid" else {}  # a runner uid at least: never as the grader
    for attempt in (1, 2):
        run = GRADINGS.run([*command, *isolation, *options], env={**os.environ, "COLUMNS": "120", **floor})
        if GRADINGS.stopping.is_set() or run.returncode == INTERRUPTED_EXIT:  # Ctrl-C reaches the graders too
            return None, INTERRUPTED
        if run.returncode == 0 and out.exists():
            return json.loads(out.read_text()), run.stdout
        if run.returncode != GRADER_FAULT or attempt == 2:
            break
    lines = run.stderr.strip().splitlines() or run.stdout.strip().splitlines() or ["no output"]
    if run.returncode == GRADER_FAULT:  # the grader says why in results.json, or on stderr if it did not grade
        said = json.loads(out.read_text())["output"].split("so this is not a grade: ")[-1] if out.exists() else ""
        return None, f"grader fault (tried twice): {said or lines[-1].removeprefix('grader fault: ')}"
    return None, f"not gradable: {lines[-1].removeprefix('not gradable: ')}"


def isolation_setting(course: Path) -> str:
    """The course's choice of how students' code runs (notebook.SETTING in its nbgrader_config.py; "sandbox"
    where the file does not set it)."""
    from traitlets import TraitError
    from traitlets.config.loader import ConfigFileNotFound, PyFileConfigLoader

    try:
        config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
        return notebook.ConcurrencyLab(config=config).isolation
    except ConfigFileNotFound:
        return "sandbox"
    except TraitError as exc:
        raise CourseError(f"{course / 'nbgrader_config.py'}: {notebook.SETTING}: {exc}") from None


@dataclass
class Running:
    """How students' code runs in one `course grade` here: the course's choice, the notebooks' kernels, the servers."""

    choice: str
    kernel: sandbox.Isolation
    servers: sandbox.Isolation

    @property
    def isolated(self) -> bool:
        return self.kernel.isolated and self.servers.isolated

    def comment(self) -> str:
        """The gradebook comment's line about it ("" in a course that lets nothing run but isolated)."""
        if self.choice == "sandbox":
            return ""
        said = f"{notebook.describe(self.kernel)}; {self.servers.describe()}"
        said += f" ({notebook.SETTING} is {self.choice!r})" if self.choice != "none" else ""
        return f"{'Isolation' if self.isolated else 'Not isolated'}: {said}."


def how_code_runs(course: Path, choice: str) -> Running:
    """How students' code will run here in a course set to choice; CourseError, saying why and naming the
    setting, where the choice does not let it run (before anything of the batch has run)."""
    if choice == "none":
        unisolated = sandbox.Isolation("none", sys.executable, False, f"{notebook.SETTING} is 'none'")
        return Running(choice, unisolated, unisolated)
    private = [KIT, course]  # as the grader and the kernel provisioner check them
    try:
        kernel = notebook.kernel_isolation(choice, private)
    except (notebook.SandboxError, sandbox.IsolationError) as exc:
        raise CourseError(str(exc)) from None
    servers = sandbox.detect(private)
    if servers.level == "none" or (choice == "sandbox" and not servers.isolated):
        raise CourseError(notebook.refusal(f"students' servers cannot run so here: {servers.describe()}", choice))
    return Running(choice, kernel, servers)


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


def find_students(course: Path, name: str, students: list[str] | None = None) -> list[str]:
    """The students to grade: those asked for, or everyone with a submission of name; CourseError if one
    asked for has none, or nobody has any."""
    submitted = course / "submitted"
    found = sorted(p.name for p in submitted.iterdir() if (p / name).is_dir()) if submitted.is_dir() else []
    students = students or found
    missing = [s for s in students if s not in found]
    if missing or not students:
        raise CourseError(f"no submission of {name} in {submitted} for {', '.join(missing) or 'anyone'}")
    return students


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait for the block to end, then act as they would have (KeyboardInterrupt, say):
    what the block writes is written whole or not at all. Outside the main thread, where Python runs no
    signal handler, there is nothing to hold."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, _: held.append(signum)) for signum in HELD}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(held):  # now, as it would have been then
            if callable(previous[signum]):
                previous[signum](signum, None)
            elif previous[signum] == signal.SIG_DFL:
                os.kill(os.getpid(), signum)


HELD = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """A batch stopped by Ctrl-C (or SIGTERM): what it recorded, and the students it left."""

    def __init__(self, graded: list["StudentResult"], left: list[str]):
        super().__init__(f"interrupted: {len(graded)} recorded, {len(left)} left")
        self.graded, self.left = graded, left


@dataclass
class Batch:
    """What `course grade` did: the students recorded, and those whose feedback is older than their new result."""

    graded: list["StudentResult"]
    stale_feedback: list[str]


def grade(
    course: Path,
    name: str,
    students: list[str] | None = None,
    options: list[str] | None = None,
    on_student=None,
    jobs: int = 1,
    record_them: bool = True,
) -> "Batch":
    """Grade the servers of students (everyone with a submission, if None), `jobs` at a time, while nbgrader
    autogrades the notebooks (one process for the batch); then record the servers' scores in the gradebook.
    Without record_them (a shard, maybe on another machine), the servers alone: `course record` then
    autogrades the notebooks and records what the shards wrote under RESULTS.
    A student whose nbgrader step fails is reported, and the batch goes on. Ctrl-C stops it at once
    (Interrupted: what finished is recorded). CourseError before anything runs where the course's isolation
    setting refuses how its code could run here. plan() says whom a batch run again has left."""
    course = course.resolve()  # the grader runs from the kit's folder: every path it gets is absolute
    options = list(options or [])
    todo = find_students(course, name, students)
    running = how_code_runs(course, isolation_setting(course))
    if jobs > 1 and running.servers.level == "uid":
        raise CourseError(
            f"--jobs {jobs} would grade students side by side as runner uids without bubblewrap, where each "
            "server sees the machine's processes and shared folders: grade one at a time (--jobs 1)"
        )
    if jobs > 1 and running.choice != "none" and (why := harness.network_isolation()):
        raise CourseError(
            f"--jobs {jobs} would grade students side by side on one shared loopback ({why}): a server could "
            "reach its neighbour's; grade one at a time (--jobs 1), or where network namespaces can be made"
        )
    graded: list[StudentResult] = []
    pool = ThreadPoolExecutor(max_workers=jobs)
    # as many checks at once as one grading would run on the CPUs this may use: students side by side share them
    each = ["--jobs", str(max(1, machine.default_jobs() // min(jobs, len(todo)))), *options]
    futures = {pool.submit(_grade_servers, course, name, student, each, running.choice): student for student in todo}
    try:
        notebook_failed = autograde_notebooks(course, name, todo) if record_them else {}  # meanwhile, here
        for future in as_completed(futures):  # the gradebook is written from this thread only
            student = futures[future]
            data, note = future.result()
            if note == INTERRUPTED:  # Ctrl-C reached this grading before it reached the batch
                raise KeyboardInterrupt
            with interrupts_held():  # a student is recorded, counted and reported whole, or not at all
                if record_them:
                    result = _record(course, name, student, data, note, notebook_failed.get(student), running)
                    write_status(course, name, student, options, result)
                else:
                    result = student_result(student, data, note, running)
                graded.append(result)
                if on_student:
                    on_student(result)
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        GRADINGS.stop()
        wait(futures, timeout=60)
        raise Interrupted(graded, sorted(set(todo) - {r.student for r in graded})) from None
    finally:
        pool.shutdown(wait=True)
        if record_them:
            write_csv(course / f"server_scores_{name}.csv", graded)
    graded.sort(key=lambda r: r.student)
    return Batch(graded, [r.student for r in graded if feedback_is_stale(course, name, r.student)])


def plan(
    course: Path,
    name: str,
    students: list[str] | None,
    options: list[str],
    force: bool = False,
    shard: tuple[int, int] = (1, 1),
) -> tuple[list[str], list[str]]:
    """(to grade, up to date): the students named are graded whatever was recorded; without names, those
    whose recorded result is of the same submission and options are left out unless force (so that a batch
    run again grades only what an earlier one left, or could not grade). shard (K, N): of those, the Kth
    of every N, in the order of their names (N machines, or N jobs of a scheduler, share a class so)."""
    course = course.resolve()
    number, shards = shard
    everyone = find_students(course, name, students)[number - 1 :: shards]
    done = [] if students or force else [s for s in everyone if up_to_date(course, name, s, options)]
    return [s for s in everyone if s not in done], done


def record_graded(course: Path, name: str, on_student=None) -> "Batch":
    """`course record`: autograde the notebooks of the students whose servers a shard graded (their
    RESULTS/NAME/STUDENT/outcome.json is newer than what was recorded) and record them, as one batch would."""
    course = course.resolve()
    waiting = []
    for student in find_students(course, name):
        outcome = course / RESULTS / name / student / "outcome.json"
        recorded = status_path(course, name, student)
        if outcome.exists() and (not recorded.exists() or recorded.stat().st_mtime < outcome.stat().st_mtime):
            waiting.append(student)
    if not waiting:
        return Batch([], [])
    running = how_code_runs(course, isolation_setting(course))
    notebook_failed = autograde_notebooks(course, name, waiting)
    graded = []
    for student in waiting:
        folder = course / RESULTS / name / student
        outcome = json.loads((folder / "outcome.json").read_text())
        data = json.loads((folder / "results.json").read_text()) if outcome["scored"] else None
        result = _record(course, name, student, data, outcome["note"], notebook_failed.get(student), running)
        write_status(course, name, student, outcome["options"], result)
        graded.append(result)
        if on_student:
            on_student(result)
    write_csv(course / f"server_scores_{name}.csv", graded)
    return Batch(graded, [r.student for r in graded if feedback_is_stale(course, name, r.student)])


def fingerprint(course: Path, name: str, student: str, options: list[str]) -> str:
    """What a result was graded from: the submission's files and the grading's options."""
    digest = hashlib.sha256(json.dumps(options).encode())
    folder = course / "submitted" / student / name
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and RESULTS not in p.parts):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def status_path(course: Path, name: str, student: str) -> Path:
    return course / RESULTS / name / student / "status.json"


def write_status(course: Path, name: str, student: str, options: list[str], result: "StudentResult") -> None:
    """What was recorded for a student, and of what (course status reads it; a batch run again skips it)."""
    path = status_path(course, name, student)
    path.parent.mkdir(parents=True, exist_ok=True)
    status = {"status": result.status, "score": result.score, "max_score": result.max_score, "note": result.note}
    status["fingerprint"] = fingerprint(course, name, student, options)
    results.write_atomically(path, status)


def read_status(course: Path, name: str, student: str) -> dict | None:
    with contextlib.suppress(OSError, ValueError):
        return json.loads(status_path(course, name, student).read_text())
    return None


def up_to_date(course: Path, name: str, student: str, options: list[str]) -> bool:
    """Whether the student's recorded result is a grade of this very submission, with these options (a
    grader fault, or an interrupted grading, is never up to date)."""
    status = read_status(course, name, student)
    return bool(
        status
        and status["status"] in ("graded", "not gradable")
        and status["fingerprint"] == fingerprint(course, name, student, options)
    )


def feedback_is_stale(course: Path, name: str, student: str) -> bool:
    """Whether the student's feedback folder exists and is older than the servers' result just recorded."""
    feedback = course / "feedback" / student / name
    result = status_path(course, name, student)
    return feedback.is_dir() and result.exists() and feedback.stat().st_mtime < result.stat().st_mtime


def status(course: Path, name: str) -> list[tuple[str, str, str]]:
    """(student, status, detail) for everyone the course knows of (the gradebook's students and those
    with a submission): graded (the score), not gradable or grader fault (why), not graded yet, missing
    (no submission)."""
    course = course.resolve()
    try:
        submitted = set(find_students(course, name))
    except CourseError:
        submitted = set()
    known = set(submitted)
    if (course / "gradebook.db").exists():
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
            known |= {student.id for student in gradebook.students}
    rows = []
    for student in sorted(known):
        found = read_status(course, name, student)
        outcome = course / RESULTS / name / student / "outcome.json"
        recorded = status_path(course, name, student)
        if student not in submitted:
            rows.append((student, "missing", "no submission"))
        elif outcome.exists() and (found is None or recorded.stat().st_mtime < outcome.stat().st_mtime):
            rows.append((student, "not recorded yet", "graded by a shard: `course record` records it"))
        elif found is None:
            rows.append((student, "not graded yet", ""))
        elif found["status"] == "graded":
            rows.append((student, "graded", f"{found['score']:g}/{found['max_score']:g} {found['note']}".strip()))
        else:
            rows.append((student, found["status"], found["note"]))
    return rows


def autograde_notebooks(course: Path, name: str, students: list[str]) -> dict[str, str]:
    """`nbgrader autograde` of each student's notebook, one after another (they share gradebook.db), in
    one process for the batch (nbgrader's API: its start-up is paid once, not once per student);
    {student: why} for those whose autograde failed (every student, if the batch itself failed)."""
    command = [sys.executable, "-m", "autograder.course", "autograde", str(course), name, *students]
    try:  # nbgrader's own Execute.timeout bounds each cell
        run = subprocess.run(
            command, cwd=KIT, capture_output=True, text=True, timeout=300 * len(students) + 300, env=environment()
        )
    except subprocess.TimeoutExpired:
        return dict.fromkeys(students, "timed out")
    last = run.stdout.strip().splitlines()[-1:]
    if run.returncode == 0 and last and last[0].startswith("{"):
        return json.loads(last[0])
    return dict.fromkeys(students, _why(run.stdout + run.stderr))


def _autograde_here(course: Path, name: str, students: list[str]) -> dict[str, str]:
    """The batch of autograde_notebooks, with the configuration the `nbgrader` command would load in the
    course folder."""
    from nbgrader.apps import NbGraderAPI, NbGraderApp

    os.chdir(course)
    app = NbGraderApp()
    app.initialize([])
    api = NbGraderAPI(config=app.config)
    failed = {}
    for student in students:
        result = api.autograde(name, student, force=True)
        if not result["success"]:
            failed[student] = _why(result.get("log", "") + result.get("error", ""))
    return failed


def _why(output: str) -> str:
    """The exception that made an nbgrader step fail, in one line (not nbgrader's "see the traceback")."""
    lines = [line.strip() for line in output.splitlines()]
    errors = [line for line in lines if re.match(r"[\w.]+(Error|Exception): ", line)]
    errors = [line for line in errors if "NbGraderException" not in line]
    return (errors or [line for line in lines if line] or ["no output"])[-1]


def _grade_servers(course: Path, name: str, student: str, options: list[str], choice: str) -> tuple[dict | None, str]:
    """(results, note) of one student's servers; an earlier good result is kept when this one fails. The
    unit of work: what it found is written under RESULTS/NAME/STUDENT/ (results.json, report.txt, and
    outcome.json, which `course record` reads), so that another machine's shard can be recorded here."""
    out = course / RESULTS / name / student
    previous = out / "results.json"
    backup = previous.read_bytes() if previous.exists() else None
    data, report = grade_server(course / "submitted" / student / name, out / "results.new.json", options, choice)
    if report == INTERRUPTED:
        return None, report
    report = for_students(report, course)
    if data is not None:
        (out / "results.new.json").replace(previous)
        (out / "report.txt").write_text(report)
        data, note = data, ""
    elif backup is None:
        (out / "report.txt").write_text(report + "\n")
        note = report
    else:
        data, note = json.loads(backup), f"{report} (kept the earlier score)"
    results.write_atomically(out / "outcome.json", {"note": note, "scored": data is not None, "options": options})
    return data, note


def for_students(report: str, course: Path) -> str:
    """The grader's report as a student may read it: no line that names where its results were written,
    and neither the course's folder nor the kit's."""
    lines = [line for line in report.splitlines() if not line.startswith("results written to ")]
    text = "\n".join(lines) + ("\n" if report.endswith("\n") else "")
    text = re.sub(rf" in {re.escape(str(course))}/submitted/\S+", "", text)  # "missing handler.py in FOLDER"
    return text.replace(str(course), "<course>").replace(str(KIT), "<kit>")


def _record(course: Path, name: str, student: str, data: dict | None, note: str, failed: str | None, running: Running):
    """The StudentResult of one student, written to the gradebook and the feedback folder where it can be."""
    if data is None:  # marked where the instructor reads grades: not gradable scores 0; a fault, nothing yet
        if not failed:
            score = None if note.startswith("grader fault") else 0.0
            record(course, name, student, score, f"Servers: not graded ({note}).")
        return student_result(student, data, note, running)
    result = student_result(student, data, note, running)
    if failed:  # no autograded notebook: no cell to write the servers' score into
        result.note = f"{result.note} nbgrader autograde failed ({failed}): not in the gradebook".strip()
    else:
        total = results.totals(results.from_gradescope(data))
        record(course, name, student, data["score"], feedback_comment(data, total, running.comment()))
        write_feedback(course, name, student, course / RESULTS / name / student)
    return result


def student_result(student: str, data: dict | None, note: str, running: Running) -> StudentResult:
    """The StudentResult of one student's servers (data: their results.json, None if they have no score)."""
    if data is None:
        return StudentResult(student, None, 0, (0, 0), {}, note)
    total = results.totals(results.from_gradescope(data))
    categories = {c: t for c, t in total.categories.items() if c != "optional"}
    if not running.isolated or sandbox.NOT_ISOLATED in data.get("output", ""):
        note = f"{note} not isolated".strip()
    return StudentResult(student, total.score, total.max_score, total.optional, categories, note)


def feedback_comment(data: dict, total: results.Totals, isolation: str = "") -> str:
    """The gradebook comment: the score, the optional part beside it (total, of data's results), then one
    line per check that lost points, then how the student's code ran (isolation, where the course says)."""
    lines = [f"Servers: {total.score:g} / {total.max_score:g} points."]
    if total.optional[1]:
        lines[0] += f" Optional part, beside that score: {total.optional[0]:g} / {total.optional[1]:g}."
    lost = [t for t in data["tests"] if t["score"] < t["max_score"]]
    lines += [f"- {t['number']} {t['name']} ({t['score']:g}/{t['max_score']:g}): {t['output']}" for t in lost]
    return "\n".join([*lines, *([isolation] if isolation else [])])


def write_feedback(course: Path, name: str, student: str, out: Path) -> None:
    """The check table beside the autograded notebook: `nbgrader generate_feedback` then hands it to the
    student with nbgrader's own feedback (feedback/STUDENT/NAME/server-checks.txt)."""
    folder = course / "autograded" / student / name
    shutil.copyfile(out / "report.txt", folder / "server-checks.txt")


def write_csv(path: Path, students: list[StudentResult]) -> None:
    """The servers' scores, a row per student, with the status of each; the rows of students not graded
    this time are kept as they were (grading some students updates their rows alone)."""
    from autograder.marks import CATEGORIES

    graded = [c for c in CATEGORIES if c != "optional"]
    header = ["student", "status", "score", "max_score", *graded, "optional", "optional_max", "note"]
    rows: dict[str, dict[str, str]] = {}
    if path.exists():
        with open(path, newline="") as file:
            rows = {row["student"]: row for row in csv.DictReader(file) if row.get("student")}
    for r in students:
        cells = {c: f"{r.categories[c][0]:g}" if c in r.categories else "" for c in graded}
        optional = [f"{r.optional[0]:g}", f"{r.optional[1]:g}"] if r.optional[1] else ["", ""]
        rows[r.student] = {
            "student": r.student,
            "status": r.status,
            "score": "" if r.score is None else f"{r.score:g}",
            "max_score": f"{r.max_score:g}",
            **cells,
            "optional": optional[0],
            "optional_max": optional[1],
            "note": r.note,
        }
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        for student in sorted(rows):
            writer.writerow({key: rows[student].get(key, "") for key in header})
    partial.replace(path)


if __name__ == "__main__":  # autograde_notebooks's process
    if sys.argv[1:2] != ["autograde"] or len(sys.argv) < 5:
        sys.exit("usage: python -m autograder.course autograde COURSE_DIR NAME STUDENT...")
    print(json.dumps(_autograde_here(Path(sys.argv[2]), sys.argv[3], sys.argv[4:])))
