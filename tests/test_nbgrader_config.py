"""nbgrader's configuration as `course init` writes it, each on a course of its own: a release that would
hold solution code fails and leaves nothing; a warning on stderr does not zero a grade cell."""

import csv
import shutil
import sys

from test_course import NAME, hand_in, nbgrader, run


def test_a_release_that_would_hold_solution_code_fails_and_leaves_nothing(tmp_path):
    run(sys.executable, "-m", "autograder", "course", "init", tmp_path, "--assignment", NAME)
    handler = tmp_path / "source" / NAME / "handler.py"
    handler.write_text(handler.read_text().replace("    ### END SOLUTION\n", "", 1))  # a region never closed
    done = nbgrader(tmp_path, "generate_assignment", NAME, check=False)
    assert done.returncode != 0
    assert "release of lab removed: encountered nested begin solution statements" in done.stderr
    assert not (tmp_path / "release" / NAME).exists()


def test_a_warning_on_stderr_does_not_zero_a_grade_cell(tmp_path, lesson):
    import nbformat

    run(sys.executable, "-m", "autograder", "course", "init", tmp_path, "--assignment", NAME)
    source = tmp_path / "source" / NAME / "report.ipynb"
    notebook = nbformat.read(source, as_version=4)
    (test_cell,) = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_task_a"]
    test_cell.source = 'import warnings\nwarnings.warn("a library said something on stderr")\n' + test_cell.source
    nbformat.write(notebook, source)
    nbgrader(tmp_path, "generate_assignment", NAME)
    folder = tmp_path / "submitted" / "dana" / NAME
    folder.mkdir(parents=True)
    shutil.copyfile(source, folder / "report.ipynb")
    hand_in(lesson, folder)
    nbgrader(tmp_path, "autograde", NAME)
    nbgrader(tmp_path, "export")
    grades = {row["student_id"]: row for row in csv.DictReader((tmp_path / "grades.csv").read_text().splitlines())}
    assert float(grades["dana"]["raw_score"]) == 4.0  # both autograded tests, the warning notwithstanding
