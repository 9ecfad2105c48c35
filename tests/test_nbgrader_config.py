"""nbgrader's configuration as `course init` writes it, on a course of its own: a release that would hold
solution code fails and leaves nothing; the course's isolation setting (test_course.py shows that a warning
on stderr does not zero a grade cell, and what each isolation choice does)."""

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


def test_init_writes_the_isolation_choice_with_its_risk_and_grading_refuses_a_value_it_does_not_know(tmp_path):
    """The default is the refusal; each choice has its risk on its own line, where it is made."""
    from autograder.notebook import CHOICES

    run(sys.executable, "-m", "autograder", "course", "init", tmp_path, "--assignment", NAME)
    config = tmp_path / "nbgrader_config.py"
    text = config.read_text()
    assert 'c.ConcurrencyLab.isolation = "sandbox"\n' in text
    for choice, risk in CHOICES.items():
        assert f'#   "{choice}"' in text and risk in text and len(f'#   "{choice}"  {risk}') <= 120
    config.write_text(text.replace('isolation = "sandbox"', 'isolation = "root"'))
    (tmp_path / "submitted" / "alice" / NAME).mkdir(parents=True)
    done = run(sys.executable, "-m", "autograder", "course", "grade", tmp_path, NAME, check=False)
    assert done.returncode == 1 and "c.ConcurrencyLab.isolation: The 'isolation' trait" in done.stderr
    assert "expected any of ['sandbox', 'uid', 'none'], not the str 'root'" in done.stderr


def test_init_again_updates_the_configuration_in_place_and_refuses_a_folder_it_did_not_make(tmp_path):
    """As an instructor pastes the README's block twice, or updates the kit: the course's own choice stays."""
    run(sys.executable, "-m", "autograder", "course", "init", tmp_path, "--assignment", NAME)
    config = tmp_path / "nbgrader_config.py"
    config.write_text(config.read_text().replace('isolation = "sandbox"', 'isolation = "uid"') + "# stale\n")
    (tmp_path / "source" / NAME / "handler.py").write_text("# the instructor's own edit\n")
    again = run(sys.executable, "-m", "autograder", "course", "init", tmp_path, "--assignment", NAME)
    assert "updated" in again.stdout
    text = config.read_text()
    assert 'c.ConcurrencyLab.isolation = "uid"\n' in text and "# stale" not in text
    assert (tmp_path / "source" / NAME / "handler.py").read_text() == "# the instructor's own edit\n"
    other = tmp_path / "other"
    other.mkdir()
    (other / "nbgrader_config.py").write_text("c = get_config()\n")
    refused = run(sys.executable, "-m", "autograder", "course", "init", other, check=False)
    assert refused.returncode == 1 and "is not one `course init` wrote: choose another folder" in refused.stderr
