"""nbgrader's configuration as `course init` writes it, on a course of its own: a release that would hold
solution code fails and leaves nothing (test_course.py shows that a warning on stderr does not zero a
grade cell)."""

import sys

from test_course import NAME, nbgrader, run


def test_a_release_that_would_hold_solution_code_fails_and_leaves_nothing(tmp_path):
    run(sys.executable, "-m", "autograder", "course", "init", tmp_path, "--assignment", NAME)
    handler = tmp_path / "source" / NAME / "handler.py"
    handler.write_text(handler.read_text().replace("    ### END SOLUTION\n", "", 1))  # a region never closed
    done = nbgrader(tmp_path, "generate_assignment", NAME, check=False)
    assert done.returncode != 0
    assert "release of lab removed: encountered nested begin solution statements" in done.stderr
    assert not (tmp_path / "release" / NAME).exists()
