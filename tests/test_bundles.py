"""The zips that leave the instructor's hands: the students' bundle and Gradescope's autograder."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autograder import KIT, SERVER_FILES, SOLUTION
from autograder.bundles import check_extracted, gradescope_bundle, student_bundle
from autograder.marks import HIDDEN
from autograder.release import ReleaseError


def test_the_student_bundle_has_the_skeletons_and_the_grader_and_no_solution(tmp_path):
    files = student_bundle(tmp_path / "lab.zip")
    assert "concurrency-lab/assignment/report.ipynb" in files and "concurrency-lab/locustfile.py" in files
    assert not any("/solution/" in name or "/tests/" in name or "/hidden/" in name for name in files)
    with zipfile.ZipFile(tmp_path / "lab.zip") as bundle:
        bundle.extractall(tmp_path / "x")
    kit = tmp_path / "x" / "concurrency-lab"
    assert check_extracted(kit) == []
    self_check = subprocess.run(
        [sys.executable, "-m", "autograder", "--mode", "single", "--check", "echo"],
        cwd=kit,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert self_check.returncode == 0, self_check.stderr
    printed = " ".join(self_check.stdout.split())
    assert "0 / 1 points" in printed and "serve() in single_server.py is not implemented yet" in printed
    rubric = subprocess.run(
        [sys.executable, "-m", "autograder", "rubric"], cwd=kit, capture_output=True, text=True, timeout=60, check=True
    )
    assert "| **total** |" in rubric.stdout and "(hidden" not in rubric.stdout  # the kit's own rubric has one


def test_a_students_bundle_holding_a_hidden_check_is_refused(tmp_path, monkeypatch):
    from autograder import bundles

    hidden = next(HIDDEN.glob("check_*.py")).read_bytes()
    assert bundles.hidden_leaked(hidden)
    assert not any(bundles.hidden_leaked(path.read_bytes()) for path in bundles._grader_files(hidden=False))
    real = bundles._grader_files
    monkeypatch.setattr(bundles, "_grader_files", lambda hidden=True: real(hidden=True))
    with pytest.raises(ReleaseError, match="no bundle written"):
        student_bundle(tmp_path / "lab.zip")
    assert not (tmp_path / "lab.zip").exists()


def gradescope(tmp_path, submission_files, *options, python=sys.executable):
    """Run the bundle's run_autograder as Gradescope would, with /autograder moved to tmp_path."""
    gradescope_bundle(tmp_path / "autograder.zip")
    with zipfile.ZipFile(tmp_path / "autograder.zip") as bundle:
        bundle.extractall(tmp_path / "source")
    assert {"setup.sh", "run_autograder", "requirements-grader.txt"} <= {
        p.name for p in (tmp_path / "source").iterdir()
    }
    folder = tmp_path / "submission" / "my-lab"  # students often zip a folder
    folder.mkdir(parents=True)
    for path in submission_files:
        shutil.copyfile(path, folder / path.name)
    env = {**os.environ, "AUTOGRADER_ROOT": str(tmp_path), "PYTHON": str(python)}
    env.pop("PYTHONPATH", None)
    run = subprocess.run(
        ["bash", tmp_path / "source" / "run_autograder", *options], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    return json.loads((tmp_path / "results" / "results.json").read_text())


def test_run_autograder_grades_a_submission_into_gradescopes_results_json(tmp_path):
    results = gradescope(tmp_path, [SOLUTION / name for name in SERVER_FILES], "--mode", "single", "--check", "echo")
    assert results["score"] == 1 and results["tests"][0]["status"] == "passed"


def test_run_autograder_says_why_a_submission_is_not_gradable(tmp_path):
    results = gradescope(tmp_path, [SOLUTION / "single_server.py"])
    assert results["score"] == 0 and results["output"].startswith("not gradable: missing handler.py")


def test_the_grader_requirements_leave_out_nbgrader_and_pin_the_rest(tmp_path):
    gradescope_bundle(tmp_path / "autograder.zip")
    with zipfile.ZipFile(tmp_path / "autograder.zip") as bundle:
        pins = bundle.read("requirements-grader.txt").decode().split()
    assert all("==" in pin for pin in pins) and not any(pin.startswith("nbgrader") for pin in pins)
    assert {pin.split("==")[0] for pin in pins} == {
        "locust",
        "pytest",
        "pytest-timeout",
        "pytest-xdist",
        "psutil",
        "rich",
        "requests",
    }
    assert (KIT / "requirements.txt").read_text().count("==") > len(pins)


def test_a_bundle_holding_a_solution_file_is_refused(tmp_path):
    from autograder import ASSIGNMENT, release
    from autograder.bundles import _write, leaked

    assert leaked("concurrency-lab/assignment/handler.py", (SOLUTION / "handler.py").read_bytes())
    assert not leaked("concurrency-lab/assignment/handler.py", (ASSIGNMENT / "handler.py").read_bytes())
    stripped_markers = (
        (SOLUTION / "handler.py").read_text().replace("### BEGIN SOLUTION\n", "").replace("### END SOLUTION\n", "")
    )
    assert leaked("handler.py", stripped_markers.encode())  # the solution lines give it away without markers
    with pytest.raises(release.ReleaseError, match=r"solution code in handler\.py"):
        _write(tmp_path / "x.zip", {"handler.py": (SOLUTION / "handler.py").read_bytes()})
    assert not (tmp_path / "x.zip").exists()


def test_run_autograder_publishes_only_what_the_grader_wrote_and_ended_well(tmp_path):
    """A grader that crashes (here: a stand-in that writes a perfect result, then exits 1) gets a result
    that says the grader failed, never what is on disk."""
    fake = tmp_path / "fake-python"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        'forged=\'{"score": 100, "tests": []}\'\n'
        'for a in "$@"; do if [ "$prev" = --json ]; then echo "$forged" > "$a"; fi; prev=$a; done\n'
        'echo "$forged" > "$AUTOGRADER_ROOT/results/results.json"\n'
        "echo 'Killed' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    gradescope_bundle(tmp_path / "autograder.zip")
    with zipfile.ZipFile(tmp_path / "autograder.zip") as bundle:
        bundle.extractall(tmp_path / "source")
    (tmp_path / "submission").mkdir()
    env = {**os.environ, "AUTOGRADER_ROOT": str(tmp_path), "PYTHON": str(fake)}
    run = subprocess.run(["bash", tmp_path / "source" / "run_autograder"], env=env, capture_output=True, timeout=60)
    assert run.returncode == 0
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    assert results["score"] == 0 and results["visibility"] == "hidden"
    assert results["output"].startswith("The grader failed (exit status 1), so this is not a grade: Killed")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("bwrap"), reason="isolation needs root and bubblewrap")
def test_run_autograder_grades_a_forging_submission_at_its_honest_score(tmp_path):
    from test_attacks import FORGE, hostile

    submission = hostile(tmp_path / "forger", FORGE)
    results = gradescope(tmp_path, [submission / name for name in SERVER_FILES], "--mode", "single", "--check", "echo")
    assert results["score"] == 0 and results["tests"] and "forged" not in json.dumps(results)


VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


def gradescope_accepts(results: dict) -> bool:
    """Whether results.json has the form Gradescope reads: a score (or scored tests), each test with its
    score, max_score, name, status and output, and known visibilities."""
    tests = results.get("tests", [])
    scored = isinstance(results.get("score"), int | float) or (tests and all("score" in t for t in tests))
    return bool(
        scored
        and isinstance(results.get("output", ""), str)
        and results.get("visibility", "visible") in VISIBILITY
        and all(
            isinstance(t["score"], int | float)
            and isinstance(t["max_score"], int | float)
            and isinstance(t["name"], str)
            and t["status"] in ("passed", "failed")
            and isinstance(t["output"], str)
            and t.get("visibility", "visible") in VISIBILITY
            for t in tests
        )
    )


@pytest.fixture(scope="module")
def grader_only_python(tmp_path_factory) -> Path:
    """A Python whose environment holds requirements-grader.txt alone, as setup.sh builds it."""
    folder = tmp_path_factory.mktemp("gradescope-image")
    gradescope_bundle(folder / "autograder.zip")
    with zipfile.ZipFile(folder / "autograder.zip") as bundle:
        requirements = folder / "requirements-grader.txt"
        requirements.write_bytes(bundle.read("requirements-grader.txt"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", folder / "venv"], check=True, timeout=120)
    python = folder / "venv" / "bin" / "python"  # installed into by this pip: half the time, the same packages
    pip = [sys.executable, "-m", "pip", "--python", python]
    install = [*pip, "install", "--quiet", "--no-compile", "-r", requirements]
    subprocess.run(install, check=True, timeout=600, capture_output=True)
    missing = subprocess.run([python, "-c", "import nbgrader"], capture_output=True, timeout=60)
    assert missing.returncode != 0  # the image has no nbgrader: the grader must not need it
    return python


@pytest.mark.parametrize("kind", ["good", "not gradable", "crashing"])
def test_run_autograder_works_in_the_image_it_targets(tmp_path, grader_only_python, kind):
    files = {name: (SOLUTION / name).read_text() for name in SERVER_FILES}
    if kind == "not gradable":
        del files["handler.py"]
    if kind == "crashing":
        files["single_server.py"] = "raise RuntimeError('crashed at start-up')\n"
    sources = []
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        sources.append(tmp_path / name)
    root = tmp_path / "root"
    root.mkdir()
    results = gradescope(root, sources, "--mode", "single", "--check", "echo", python=grader_only_python)
    assert gradescope_accepts(results), results
    expected = {"good": 1, "not gradable": 0, "crashing": 0}[kind]
    assert results["score"] == expected
    if kind == "not gradable":
        assert results["output"].startswith("not gradable: missing handler.py")
    if kind == "crashing":
        assert "crashed at start-up" in results["tests"][0]["output"]
