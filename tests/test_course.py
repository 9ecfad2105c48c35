"""The course workflow on nbgrader, end to end in a temporary folder: init, generate_assignment, three
students' submissions, `course grade`, feedback and export; and where bubblewrap cannot work, each choice
of the course's isolation setting. nbgrader runs for real, as subprocesses."""

import contextlib
import csv
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from test_notebook_sandbox import runner_can_run_this_python

from autograder import ASSIGNMENT, KIT, OPTIONAL_FILES, SERVER_FILES, SOLUTION, sandbox
from autograder.course import environment, verify_no_solution

from conftest import leftovers, mutant

NAME = "lab"
WARNS = "test_task_a"  # the test cell that warns on stderr in the course fixture
SECRET = {"CONCURRENCY_LAB_TEST_SECRET": "the instructor's"}  # in the environment of the course fixture's grading
ATTACK = """
import os, pathlib
course = pathlib.Path({course!r})
print("uid", os.getuid(), "secret", os.environ.get("CONCURRENCY_LAB_TEST_SECRET"))
for target in ("source/lab/handler.py", "gradebook.db", "nbgrader_config.py", "submitted/alice/lab/handler.py"):
    try:
        (course / target).read_bytes()
        print("LEAKED", target)
    except OSError as exc:
        print("DENIED", target, type(exc).__name__)
try:
    (course / "forged.txt").write_text("100")
    print("LEAKED forged.txt")
except OSError as exc:
    print("DENIED forged.txt", type(exc).__name__)
"""  # a hostile student's cell in her notebook, who knows where the course lies


def run(*args, cwd: Path = KIT, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**environment(), **(env or {})}
    done = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    if check:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def nbgrader(course: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(sys.executable, "-m", "nbgrader", *args, cwd=course, check=check)


def hand_in(lesson: Path, folder: Path) -> None:
    shutil.copytree(lesson, folder / "results" / "lesson")


@pytest.fixture(scope="module")
def course(tmp_path_factory, lesson) -> Path:
    """A course after init, generate_assignment, four submissions, and `course grade` of the four at
    once (their scores are asserted below; the one-at-a-time path is graded by the later tests). One of
    the notebook's test cells also warns on stderr, as a library may; one student's notebook attacks."""
    import nbformat

    course = tmp_path_factory.mktemp("course")
    run(sys.executable, "-m", "autograder", "course", "init", course, "--assignment", NAME)
    source = course / "source" / NAME / "report.ipynb"
    notebook = nbformat.read(source, as_version=4)
    (test_cell,) = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == WARNS]
    test_cell.source = 'import warnings\nwarnings.warn("a library said something on stderr")\n' + test_cell.source
    nbformat.write(notebook, source)
    nbgrader(course, "generate_assignment", NAME)
    students = {
        "alice": SOLUTION,  # the reference, notebook answered
        "bob": course / "release" / NAME,  # the release as it was handed out, nothing filled in
        "carol": mutant(  # the reference, but the parent keeps its copy of the client socket
            course / "carol-work",
            "multiprocess_server.py",
            "        conn.close()  # The parent closes its copy of the client socket (important!)\n",
            "",
        ),
        "mallory": SOLUTION,  # the reference, and a notebook cell that goes after the course (ATTACK)
    }
    for student, files in students.items():
        folder = course / "submitted" / student / NAME
        folder.mkdir(parents=True)
        for name in SERVER_FILES:
            shutil.copyfile(files / name, folder / name)
        notebook = SOLUTION / "report.ipynb" if student != "bob" else files / "report.ipynb"
        shutil.copyfile(notebook, folder / "report.ipynb")
        hand_in(lesson, folder)
        (folder / "timestamp.txt").write_text("2026-11-26 10:00:00.000000 UTC")
    hostile = nbformat.read(SOLUTION / "report.ipynb", as_version=4)
    hostile.cells.insert(1, nbformat.v4.new_code_cell(ATTACK.format(course=str(course))))
    nbformat.write(hostile, course / "submitted" / "mallory" / NAME / "report.ipynb")
    grading = ["--mode", "multiprocess", "--check", "connection_closes", "--check", "echo"]  # 2 points: a part
    done = run(sys.executable, "-m", "autograder", "course", "grade", course, NAME, *grading, "--jobs", "3", env=SECRET)
    graded = {line.split(":")[0] for line in done.stdout.splitlines() if ":" in line}
    assert graded >= {"alice", "bob", "carol", "mallory"}
    return course


def test_the_release_holds_skeletons_and_a_student_notebook_with_no_solution(course):
    released = course / "release" / NAME
    assert sorted(p.name for p in released.iterdir()) == sorted([*SERVER_FILES, *OPTIONAL_FILES, "report.ipynb"])
    assert verify_no_solution(released) == []
    for name in [*SERVER_FILES, *OPTIONAL_FILES]:
        assert (released / name).read_text() == (ASSIGNMENT / name).read_text()


def test_course_grade_records_each_students_server_score_and_the_export_adds_it_up(course):
    scores = {
        row["student"]: row for row in csv.DictReader((course / f"server_scores_{NAME}.csv").read_text().splitlines())
    }
    assert {s: scores[s]["score"] for s in scores} == {"alice": "2", "bob": "0", "carol": "1", "mallory": "2"}
    assert scores["carol"]["protocol"] == "1" and scores["carol"]["note"] == ""
    nbgrader(course, "export")
    grades = {row["student_id"]: row for row in csv.DictReader((course / "grades.csv").read_text().splitlines())}
    # the notebook's autograded tests (2 + 2 + 2 points) and the servers' score (out of 2 here)
    raw = {s: float(grades[s]["raw_score"]) for s in grades}
    assert raw == {"alice": 8.0, "bob": 0.0, "carol": 7.0, "mallory": 8.0}
    assert float(grades["alice"]["max_score"]) == 116.0  # 6 autograded + 10 written + 100 for the servers
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:  # Task D: the lesson's timeline.csv
        found = {s: gradebook.find_grade("test_task_d", "report", NAME, s).auto_score for s in ("alice", "bob")}
    assert found == {"alice": 2.0, "bob": 0.0}


def test_a_warning_on_stderr_does_not_zero_a_grade_cell(course):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        grade = gradebook.find_grade(WARNS, "report", NAME, "alice")
        assert (grade.auto_score, grade.max_score) == (2.0, 2.0)


def test_a_students_notebook_runs_isolated_from_the_course_and_the_instructor(course):
    """Her cell ran (and her notebook kept its points, above) but read nothing of the course, wrote nothing
    into it, and saw nothing of the environment the instructor graded in."""
    import nbformat

    autograded = nbformat.read(course / "autograded" / "mallory" / NAME / "report.ipynb", as_version=4)
    printed = "".join(output.get("text", "") for output in autograded.cells[1].outputs)
    assert printed.count("DENIED") == 5 and "LEAKED" not in printed, printed
    assert "secret None" in printed and not (course / "forged.txt").exists()
    if os.geteuid() == 0:  # a runner uid of its own
        assert "uid 0 " not in printed


def test_feedback_explains_the_lost_points_and_never_hands_out_the_solution(course):
    nbgrader(course, "generate_feedback", NAME)
    carol = " ".join((course / "feedback" / "carol" / NAME / "server-checks.txt").read_text().split())
    assert "the server's own process still holds the client's socket after the reply: the parent's copy" in carol
    bob = course / "feedback" / "bob" / NAME
    assert (bob / "report.html").exists() and (bob / "server-checks.txt").exists()
    assert verify_no_solution(bob) == []  # his own unfilled files, not the instructor's
    autograded = course / "autograded" / "bob" / NAME / "handler.py"
    assert autograded.read_text() == (ASSIGNMENT / "handler.py").read_text()


def hidden_test_lines(notebook: Path) -> list[str]:
    """The telling lines of the notebook's hidden tests (between its BEGIN and END HIDDEN TESTS markers)."""
    import nbformat

    hidden, shown, inside = [], set(), False
    for cell in nbformat.read(notebook, as_version=4).cells:
        for line in cell.source.splitlines():
            if "BEGIN HIDDEN TESTS" in line or "END HIDDEN TESTS" in line:
                inside = "BEGIN" in line
            elif inside and len(line.strip()) >= 20:  # a line that gives something away, not a lone bracket
                hidden.append(line.strip())
            else:
                shown.add(line.strip())
    return [line for line in hidden if not any(line in other for other in shown)]  # not one an answer holds too


def test_no_file_a_student_receives_shows_a_hidden_test(course):
    """nbgrader's feedback would show them in the cells and in the tracebacks of failed tests (nbgrader
    issues #917 and #1363); generate_feedback, typed by hand as the README says, uses the course's config."""
    nbgrader(course, "generate_feedback", NAME, "--force")
    hidden = hidden_test_lines(course / "source" / NAME / "report.ipynb")
    assert len(hidden) >= 5
    received = sorted(p for p in (course / "feedback").rglob("*") if p.is_file())
    assert {p.relative_to(course / "feedback").parts[0] for p in received} >= {"alice", "bob", "carol"}
    for path in received:
        text = html.unescape(re.sub(r"<[^>]+>", "", path.read_text(errors="replace")))  # as a student reads it
        shown = [line for line in hidden if line in text]
        assert not shown and "HIDDEN TESTS" not in text, (path, shown[:3])
    bob = (course / "feedback" / "bob" / NAME / "report.html").read_text()
    assert "its hidden part is not shown" in bob  # his unfilled notebook failed the tests: said, not quoted


def test_grading_again_is_idempotent_and_a_grader_failure_keeps_the_earlier_score(course):
    """As an instructor grades again: from the course folder, where the first grading wrote its results."""
    results = course / "server-checks" / NAME / "alice" / "results.json"
    before = json.loads(results.read_text())["score"]
    (course / "submitted" / "alice" / NAME / "handler.py").write_text("def broken(:\n")
    done = run(sys.executable, "-m", "autograder", "course", "grade", ".", NAME, "--student", "alice",
               "--mode", "multiprocess", "--check", "echo", cwd=course)  # fmt: skip
    assert "alice: 2/2 not gradable: handler.py does not parse" in done.stdout
    assert json.loads(results.read_text())["score"] == before
    nbgrader(course, "export")
    grades = {row["student_id"]: row for row in csv.DictReader((course / "grades.csv").read_text().splitlines())}
    assert float(grades["alice"]["raw_score"]) == 8.0


@contextlib.contextmanager
def isolation(course: Path, choice: str):
    """The course set to choice (its nbgrader_config.py, as an instructor edits it), then back to the default."""
    config = course / "nbgrader_config.py"
    text = config.read_text()
    default = 'c.ConcurrencyLab.isolation = "sandbox"\n'
    assert default in text
    config.write_text(text.replace(default, f"c.ConcurrencyLab.isolation = {choice!r}\n"))
    try:
        yield
    finally:
        config.write_text(text)


def grade_mallory(course: Path, choice: str) -> subprocess.CompletedProcess:
    """`course grade` of mallory alone (the hostile notebook cell), one check, where bubblewrap cannot work."""
    no_bwrap = {"CONCURRENCY_LAB_BWRAP": str(course / "no-bwrap"), **SECRET}
    with isolation(course, choice):
        return run(sys.executable, "-m", "autograder", "course", "grade", course, NAME, "--student", "mallory",
                   "--mode", "single", "--check", "echo", check=False, env=no_bwrap)  # fmt: skip


def mallory(course: Path) -> tuple[str, str, float]:
    """What her hostile cell printed, the servers' gradebook comment, and her notebook's first test's score."""
    import nbformat
    from nbgrader.api import Gradebook

    autograded = nbformat.read(course / "autograded" / "mallory" / NAME / "report.ipynb", as_version=4)
    printed = "".join(output.get("text", "") for output in autograded.cells[1].outputs)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        comment = gradebook.find_comment("server_score", "report", NAME, "mallory").manual_comment
        score = gradebook.find_grade(WARNS, "report", NAME, "mallory").auto_score
    return printed, comment, score


def test_where_bubblewrap_cannot_work_the_course_refuses_by_default_and_names_the_setting(course):
    results = course / "server-checks" / NAME / "bob" / "results.json"
    before = results.stat().st_mtime_ns
    done = run(sys.executable, "-m", "autograder", "course", "grade", course, NAME, "--student", "bob",
               check=False, env={"CONCURRENCY_LAB_BWRAP": str(course / "no-bwrap")})  # fmt: skip
    said = " ".join(done.stderr.split())
    assert done.returncode == 1 and "course: a student's notebook runs only isolated" in said, said
    assert "bubblewrap is not installed" in said
    assert "This course's c.ConcurrencyLab.isolation (nbgrader_config.py) is 'sandbox'" in said
    assert 'set it to "uid" (' in said and '"none" (' in said  # the choices, each with its risk
    assert results.stat().st_mtime_ns == before  # nothing ran


def test_a_course_set_to_uid_runs_the_kernel_and_the_servers_as_runner_uids_and_says_so(course):
    done = grade_mallory(course, "uid")
    if not runner_can_run_this_python():  # a kit in a private folder, or not root: refused, and why
        assert done.returncode == 1 and "course: " in done.stderr and "runner uid" in done.stderr, done.stderr
        return
    assert done.returncode == 0 and "mallory: 1/1" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    printed, comment, score = mallory(course)
    uid = int(printed.split()[1])
    assert sandbox.UID_BASE <= uid < sandbox.UID_BASE + sandbox.SLOTS, printed  # a runner uid of its own
    assert printed.count("DENIED") == 5 and "secret None" in printed and not (course / "forged.txt").exists()
    assert score == 2.0  # her notebook ran whole
    said = comment.splitlines()[-1]
    level = r"runs? (isolated \(a runner uid of \w+ own, no bubblewrap|as a runner uid of \w+ own, but bubblewrap)"
    kernel, servers = rf"the notebook's kernel {level}", rf"servers {level}"
    assert re.search(kernel, said) and re.search(servers, said), said
    assert said.endswith("(c.ConcurrencyLab.isolation is 'uid')."), said
    report = " ".join((course / "server-checks" / NAME / "mallory" / "report.txt").read_text().split())
    assert re.search(servers, report), report  # the result says so too


def test_a_course_set_to_none_grades_and_every_result_says_not_isolated(course):
    done = grade_mallory(course, "none")
    try:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert "mallory: 1/1 not isolated" in done.stdout
        printed, comment, score = mallory(course)
        assert "LEAKED" in printed and (course / "forged.txt").exists()  # not isolated indeed: her cell ran as you
        assert f"uid {os.geteuid()} " in printed and score == 2.0
        assert comment.splitlines()[-1].startswith("Not isolated: the notebook's kernel runs as you")
        results = json.loads((course / "server-checks" / NAME / "mallory" / "results.json").read_text())
        assert "Warning: not isolated: a submission could alter this result" in results["output"]
        table = (course / f"server_scores_{NAME}.csv").read_text().splitlines()
        rows = {row["student"]: row for row in csv.DictReader(table)}
        assert rows["mallory"]["note"] == "not isolated"
    finally:
        (course / "forged.txt").unlink(missing_ok=True)


def test_the_batch_goes_on_past_a_failing_student_and_shows_the_optional_part_beside_the_100(course):
    """Run last: it adds students to the module's course."""
    dave = course / "submitted" / "dave" / NAME  # the reference with the optional part
    erin = course / "submitted" / "erin" / NAME  # a notebook nbgrader cannot read
    for folder in (dave, erin):
        folder.mkdir(parents=True)
        for name in [*SERVER_FILES, *OPTIONAL_FILES]:
            shutil.copyfile(SOLUTION / name, folder / name)
        (folder / "timestamp.txt").write_text("2026-11-26 10:00:00.000000 UTC")
    shutil.copyfile(SOLUTION / "report.ipynb", dave / "report.ipynb")
    (erin / "report.ipynb").write_text("{ not a notebook")
    done = run(sys.executable, "-m", "autograder", "course", "grade", course, NAME, "--student", "dave",
               "--student", "erin", "--mode", "single", "--mode", "threadpool", "--check", "echo")  # fmt: skip
    assert "dave: 1/1 (optional part: 1/1)" in done.stdout
    assert "erin: 1/1 (optional part: 1/1) nbgrader autograde failed (nbformat.reader.NotJSONError: " in done.stdout
    rows = {
        row["student"]: row for row in csv.DictReader((course / f"server_scores_{NAME}.csv").read_text().splitlines())
    }
    assert (rows["dave"]["score"], rows["dave"]["max_score"]) == ("1", "1")
    assert (rows["dave"]["optional"], rows["dave"]["optional_max"]) == ("1", "1")
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        comment = gradebook.find_comment("server_score", "report", NAME, "dave").manual_comment
    assert comment.startswith("Servers: 1 / 1 points. Optional part, beside that score: 1 / 1.")
    fault = run(sys.executable, "-m", "autograder", "course", "grade", course, NAME, "--student", "dave",
                "--check", "no-such-check")  # fmt: skip
    assert "grader fault (tried twice): no check matched the selection" in fault.stdout


def test_the_notebook_reads_the_lesson_from_a_folder_above_the_one_it_runs_in(tmp_path, lesson):
    """Opened from the kit's folder or from assignment/, it finds results/lesson/ where it is."""
    import nbformat
    from nbclient import NotebookClient

    hand_in(lesson, tmp_path)
    (tmp_path / "notebooks").mkdir()
    notebook = nbformat.read(SOLUTION / "report.ipynb", as_version=4)
    NotebookClient(notebook, timeout=120, resources={"metadata": {"path": str(tmp_path / "notebooks")}}).execute()
    printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert f"{tmp_path / 'results' / 'lesson'}: modes ['single']" in printed
    assert " io single       knee at 2 users" in printed
    assert {"timeline.csv", "timeline.json", "timeline.png"} <= {p.name for p in lesson.iterdir()}  # for Task D


def test_grading_some_students_keeps_the_others_rows_and_status_tells_each_students_state(course):
    """Run after the batch above added dave and erin alone: every earlier student keeps their row."""
    from nbgrader.api import Gradebook

    frank = course / "submitted" / "frank" / NAME  # hands in no handler.py: not gradable
    frank.mkdir(parents=True)
    for name in SERVER_FILES[1:]:
        shutil.copyfile(SOLUTION / name, frank / name)
    shutil.copyfile(SOLUTION / "report.ipynb", frank / "report.ipynb")
    (frank / "timestamp.txt").write_text("2026-11-26 10:00:00.000000 UTC")
    done = run(sys.executable, "-m", "autograder", "course", "grade", course, NAME, "--student", "frank",
               "--mode", "single", "--check", "echo")  # fmt: skip
    assert "frank: not gradable: missing handler.py" in done.stdout
    rows = {r["student"]: r for r in csv.DictReader((course / f"server_scores_{NAME}.csv").read_text().splitlines())}
    assert set(rows) >= {"alice", "bob", "carol", "mallory", "dave", "erin", "frank"}
    assert (rows["frank"]["status"], rows["frank"]["score"]) == ("not gradable", "")
    assert rows["bob"]["status"] == "graded" and rows["bob"]["score"] == "0"
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        score = gradebook.find_grade("server_score", "report", NAME, "frank").manual_score
        comment = gradebook.find_comment("server_score", "report", NAME, "frank").manual_comment
        gradebook.update_or_create_student("gina")  # on the class list, nothing handed in
    assert score == 0 and comment == "Servers: not graded (not gradable: missing handler.py)."
    listed = run(sys.executable, "-m", "autograder", "course", "status", course, NAME).stdout
    states = {line.split()[0]: line.split(maxsplit=1)[1] for line in listed.splitlines()}
    assert states["alice"].startswith("graded") and states["frank"].startswith("not gradable")
    assert states["gina"].startswith("missing")
    report = (course / "server-checks" / NAME / "dave" / "report.txt").read_text()
    assert "results written to" not in report and str(course) not in report  # nothing of the instructor's folders


HELD_BLOCK = """
import os, signal, sys, time
from autograder.course import interrupts_held
try:
    with interrupts_held():
        os.kill(os.getpid(), signal.{signal})
        time.sleep(0.2)  # a handler would have run by now
        print("the block ended", flush=True)
except KeyboardInterrupt:
    print("then interrupted", flush=True)
    sys.exit(130)
print("not interrupted")
"""


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_a_signal_in_a_held_block_waits_for_its_end(signum):
    """Ctrl-C between a student's status and the batch's count of it would leave the two disagreeing: the
    record block holds Ctrl-C (and SIGTERM, which it leaves as it was: the default, here) until it ends."""
    done = run(sys.executable, "-c", HELD_BLOCK.format(signal=signum), check=False)
    if signum == "SIGINT":
        assert (done.returncode, done.stdout) == (130, "the block ended\nthen interrupted\n"), done.stderr
    else:  # no handler of SIGTERM in that process: it ends as SIGTERM ends a process, once the block is done
        assert (done.returncode, done.stdout) == (-signal.SIGTERM, "the block ended\n"), done.stderr


def test_ctrl_c_stops_the_batch_at_once_and_the_same_command_then_grades_what_is_left(course):
    """Ctrl-C, as a terminal sends it (to the whole process group), once the first student is recorded:
    the gradings under way stop, none queued starts, what finished is recorded; the same command again
    grades only the students left."""
    command = [sys.executable, "-m", "autograder", "course", "grade", str(course), NAME, "--jobs", "1"]
    tagged = {"COLUMNS": "200", "CONCURRENCY_LAB_TAG_PREFIX": f"batch-{os.getpid()}-"}  # its servers, for leftovers()
    command += ["--mode", "single", "--mode", "multithread", "--check", "echo", "--check", "held_client"]
    batch = subprocess.Popen(
        command, cwd=KIT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), env={**os.environ, **tagged},
    )  # fmt: skip
    try:
        first = batch.stdout.readline()  # the first student recorded
        assert re.match(r"\w+: ", first), first
        os.killpg(batch.pid, signal.SIGINT)
        _, err = batch.communicate(timeout=90)
    finally:
        if batch.returncode is None:  # not reaped: its pid, the group's id, is still its own
            os.killpg(batch.pid, signal.SIGKILL)
            batch.wait()
    assert batch.returncode == 130, err[-2000:]
    said = re.search(r"interrupted: (\d+) recorded, (\d+) left \(([\w, ]+)\)", err)
    assert said, err[-2000:]
    recorded, left = int(said[1]), said[3].split(", ")
    assert recorded >= 1 and len(left) == int(said[2]) >= 1
    assert leftovers(tagged["CONCURRENCY_LAB_TAG_PREFIX"]) == []  # no server of the batch is left running
    with pytest.raises(ProcessLookupError):  # nor any grading or nbgrader process of it
        os.killpg(batch.pid, 0)
    again = run(*command)
    up_to_date = re.search(r"up to date, not graded again: ([\w, ]+) \(", again.stdout)
    assert up_to_date and len(up_to_date[1].split(", ")) == recorded, again.stdout
    graded_now = {line.split(":")[0] for line in again.stdout.splitlines() if re.match(r"\w+: ", line)}
    assert graded_now == set(left)


def test_zip_collect_takes_each_students_zip_as_students_make_them(course):
    """Real zips, as nbgrader's zip_collect reads them from downloaded/NAME/archive/: one with the files at
    its top, one of a folder (with macOS's __MACOSX beside it); then graded as any submission."""
    archive = course / "downloaded" / NAME / "archive"
    archive.mkdir(parents=True)
    files = {name: (SOLUTION / name).read_bytes() for name in SERVER_FILES}
    files["report.ipynb"] = (SOLUTION / "report.ipynb").read_bytes()
    files["results/lesson/io/sweep.json"] = b"{}"
    with zipfile.ZipFile(archive / "hana.zip", "w") as flat:
        for name, data in files.items():
            flat.writestr(name, data)
    with zipfile.ZipFile(archive / "ivan.zip", "w") as folder:
        for name, data in files.items():
            folder.writestr(f"my-lab/{name}", data)
            folder.writestr(f"__MACOSX/my-lab/._{Path(name).name}", b"\x00\x05\x16\x07")
    done = nbgrader(course, "zip_collect", NAME)
    assert "files collected" in done.stdout + done.stderr
    for student in ("hana", "ivan"):
        submitted = course / "submitted" / student / NAME
        assert {p.name for p in submitted.iterdir()} >= {*SERVER_FILES, "report.ipynb", "results"}, student
        assert (submitted / "results" / "lesson" / "io" / "sweep.json").read_bytes() == b"{}"
        assert not list(submitted.rglob("._*")) and not (submitted / "my-lab").exists()
    graded = run(sys.executable, "-m", "autograder", "course", "grade", course, NAME, "--student", "hana",
                 "--student", "ivan", "--mode", "single", "--check", "echo")  # fmt: skip
    assert "hana: 1/1" in graded.stdout and "ivan: 1/1" in graded.stdout
