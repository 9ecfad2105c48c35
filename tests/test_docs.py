"""The README and the guides in docs/ tell the truth: the rubric is the grader's, the set-up commands are the
ones CI runs, and their runnable blocks run."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from autograder import KIT, grade, results
from autograder.marks import CATEGORIES

from documents import copy_of_the_kit, paste_in_order


def test_readme_rubric_is_the_graders_rubric():
    rubric = subprocess.run(
        [sys.executable, "-m", "autograder", "rubric"], cwd=KIT, capture_output=True, text=True, check=True
    ).stdout
    assert rubric.count("\n") > 20 and "| | **total** | | | | | | **100** |" in rubric
    assert "| | **optional part, beside the total** | | | | | | **46** |" in rubric
    assert rubric in (KIT / "docs" / "instructors.md").read_text()
    total = results.totals(grade.collect())
    said = ", ".join(f"{CATEGORIES[c].lower()} {p:g}" for c, (_, p) in total.categories.items() if c != "optional")
    readme = " ".join((KIT / "README.md").read_text().split())
    assert f"{total.max_score:g} points: {said}; the optional part's {total.optional[1]:g} beside them" in readme
    assert f"the optional part's {total.optional[1]:g} beside them. The second" in readme


def test_readme_gives_the_two_set_up_commands_and_ci_runs_the_same_install_and_tests():
    readme = (KIT / "README.md").read_text()
    block = readme.split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert len(block) == 2
    install, tests = block
    assert "python3 -m venv .venv" in install and "pip install -r requirements.txt" in install
    assert "python -m autograder grade solution" in install
    assert tests == ".venv/bin/python -m pytest"
    ci = (KIT / ".ci" / "run").read_text()
    assert "pip install --quiet -r requirements.txt" in ci and "python -m pytest" in ci


def test_requirements_pin_every_package_and_install_the_kit_in_place():
    lines = [line for line in (KIT / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "-e ." and all("==" in line for line in lines[1:])
    assert {line.split("==")[0] for line in lines} >= {"locust", "nbgrader", "pytest", "psutil", "rich"}


def test_the_installed_kit_runs_from_any_folder(tmp_path):
    """`python -m autograder` and the `concurrency-lab` command work outside the kit, and find its data."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    command = shutil.which("concurrency-lab", path=str(Path(sys.executable).parent))
    assert command, "the console command is not installed beside this Python"
    rubric = subprocess.run([command, "rubric"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60)
    assert rubric.returncode == 0 and "**total**" in rubric.stdout
    run = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", KIT / "solution", "--mode", "single", "--check", "echo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0 and "1 / 1 points" in run.stdout, run.stdout + run.stderr


def test_the_readmes_blocks_run_pasted_in_order_into_one_shell(tmp_path):
    output = paste_in_order(copy_of_the_kit(tmp_path), KIT / "README.md")
    assert "HTTP/1.1 200 OK" in output and "Aggregated" in output  # curl, then locust


def test_the_instructors_guides_blocks_run_pasted_in_order_into_one_shell(tmp_path):
    """As an instructor pastes them: the course workflow, then two shards side by side and their record."""
    copy = copy_of_the_kit(tmp_path)
    output = paste_in_order(copy, KIT / "docs" / "instructors.md")
    assert "0 without a score" in output and (copy / "mycourse" / "grades.csv").exists()
    assert "recorded 1 in" in output and "alice" in output.split("recorded 1 in")[-1], output[-3000:]  # status after


def test_the_measurement_guides_blocks_run_pasted_in_order_into_one_shell(tmp_path):
    output = paste_in_order(copy_of_the_kit(tmp_path), KIT / "docs" / "measurements.md")
    assert "Capacity (the knee" in output  # the sweep block
