"""The student skeletons: generated from the reference by nbgrader's ClearSolutions, and runnable unfilled."""

import ast
import shutil
import subprocess
import sys
import time

import pytest

from autograder import ALL_MODES, ASSIGNMENT, KIT, MODES, OPTIONAL_FILES, SERVER_FILES, SOLUTION, release
from autograder.client import exchange, get


def test_assignment_is_exactly_a_fresh_generation_of_solution():
    run = subprocess.run(
        [sys.executable, "-m", "autograder", "release", "--check"], cwd=KIT, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in ASSIGNMENT.glob("*.py")) == sorted(SERVER_FILES + OPTIONAL_FILES)


@pytest.mark.parametrize("name", SERVER_FILES + OPTIONAL_FILES)
def test_skeleton_keeps_signatures_and_docstrings_and_drops_every_solution_line(name):
    source, skeleton = (SOLUTION / name).read_text(), (ASSIGNMENT / name).read_text()
    assert "BEGIN SOLUTION" not in skeleton and "END SOLUTION" not in skeleton
    assert "# YOUR CODE HERE\n" in skeleton and "raise NotImplementedError()" in skeleton
    assert not release.solution_lines(source) & {line.strip() for line in skeleton.splitlines()}

    def outline(text):
        return [(n.name, ast.get_docstring(n)) for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef)]

    assert outline(skeleton) == outline(source)


def test_release_writes_into_a_folder_and_reports_what_changed(tmp_path):
    out = tmp_path / "release"
    run = subprocess.run(
        [sys.executable, "-m", "autograder", "release", "--out", out], cwd=KIT, capture_output=True, text=True
    )
    assert run.returncode == 0 and "wrote 7 skeletons" in run.stdout
    for name in [*SERVER_FILES, *OPTIONAL_FILES, "report.ipynb"]:
        assert (out / name).read_text() == (ASSIGNMENT / name).read_text()
    (out / "handler.py").write_text("stale")
    check = subprocess.run(
        [sys.executable, "-m", "autograder", "release", "--check", "--out", out],
        cwd=KIT,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 1 and "out of date (handler.py)" in check.stderr


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def f():\n    ### BEGIN SOLUTION\n    return 1\n", "no end solution statement"),
        ("def f():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n    ### END SOLUTION\n", "nested"),
        ("def f():\n    return 1\n", "no solution region"),
        ("def f():\n    ### BEGIN SOLUTION\n    return (1\n    ### END SOLUTION\n    )\n", "does not parse"),
    ],
)
def test_a_broken_solution_file_is_an_error_not_a_release(tmp_path, source, message):
    (tmp_path / "handler.py").write_text(source)
    with pytest.raises(release.ReleaseError, match=message):
        release.generate(tmp_path)


def test_a_skeleton_holding_a_solution_line_is_caught():
    source = "def f():\n    ### BEGIN SOLUTION\n    return secret_answer()\n    ### END SOLUTION\n"
    with pytest.raises(release.ReleaseError, match="solution code is left"):
        release.verify("f.py", source, "def f():\n    return secret_answer()\n")


def test_unfilled_skeleton_servers_start_and_close_each_connection_with_a_log_line(start_server):
    for mode in ALL_MODES:
        server = start_server(mode, root=ASSIGNMENT)
        reply = exchange(server.address, get(), timeout=3.0)
        assert reply.closed and reply.raw == b"", reply
        time.sleep(0.2)
        missing = "on_readable()" if mode == "eventloop" else "serve()"  # the event loop itself is given
        assert f"{missing} in {mode}_server.py is not implemented yet" in server.output()
        assert server.stop() == 0


def test_filled_dispatch_with_an_unfilled_handler_says_which_task_is_missing(start_server, tmp_path):
    for name in SERVER_FILES:
        shutil.copy(SOLUTION / name, tmp_path / name)
    shutil.copy(ASSIGNMENT / "handler.py", tmp_path / "handler.py")
    for mode in MODES:
        server = start_server(mode, root=tmp_path)
        reply = exchange(server.address, get(), timeout=3.0)
        assert reply.closed and reply.raw == b""
        time.sleep(0.3)
        assert "handle_client() in handler.py is not implemented yet: closing the connection" in server.output()
        assert server.popen.poll() is None


def test_the_student_notebook_keeps_the_visible_tests_and_loses_answers_hidden_tests_and_outputs():
    import nbformat

    source = nbformat.read(SOLUTION / "report.ipynb", as_version=4)
    student = nbformat.read(ASSIGNMENT / "report.ipynb", as_version=4)
    assert [c.metadata["nbgrader"]["grade_id"] for c in student.cells] == [
        c.metadata["nbgrader"]["grade_id"] for c in source.cells
    ]
    text = "\n".join(c.source for c in student.cells)
    assert "BEGIN HIDDEN TESTS" not in text and "max(found, key=found.get)" not in text
    assert "assert set(capacity) == set(WORKLOADS)" in text  # the visible test stays
    answers = [c for c in student.cells if c.metadata["nbgrader"]["solution"] and c.cell_type == "markdown"]
    assert answers and all(c.source == "YOUR ANSWER HERE" for c in answers)
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
    assert "import locust" not in text and "_server.py" not in text  # it only reads files
