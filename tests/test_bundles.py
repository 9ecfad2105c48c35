"""What leaves the instructor's hands: the students' zip, Gradescope's autograder zip and PrairieLearn's
question, as `python -m autograder release` writes them; and their scripts (setup.sh, run_autograder,
run.sh), run as the platforms run them, with their roots moved to temporary folders."""

import json
import os
import py_compile
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from autograder import OPTIONAL_FILES, SERVER_FILES, SOLUTION, grade, results
from autograder.bundles import (
    PRAIRIELEARN_GRADING,
    PRAIRIELEARN_QUESTION,
    PRAIRIELEARN_TIMEOUT,
    SETUP_SH,
    check_extracted,
    prairielearn_release,
    student_bundle,
)
from autograder.marks import HIDDEN
from autograder.release import ReleaseError
from autograder.results import Result

from conftest import mutant

IMAGE = "course-staff/concurrency-lab-grader"


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    """What `python -m autograder release` writes with all its bundles: lab.zip (the students'),
    autograder.zip (Gradescope's) and prairielearn/; the skeletons go to a folder of their own, so that
    the kit's assignment/ is left alone."""
    out = tmp_path_factory.mktemp("release")
    bundles = ["--student-bundle", out / "lab.zip", "--gradescope", out / "autograder.zip"]
    bundles += ["--prairielearn", out / "prairielearn", "--prairielearn-image", IMAGE]
    command = [sys.executable, "-m", "autograder", "release", "--out", out / "skeletons", *bundles]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return out


@pytest.fixture(scope="module")
def handed_out(released) -> dict[str, bytes]:
    """The assignment's files as the students' zip lays them out: {path in the zip: bytes}."""
    with zipfile.ZipFile(released / "lab.zip") as bundle:
        names = [name for name in bundle.namelist() if name.startswith("concurrency-lab/assignment/")]
        return {name: bundle.read(name) for name in names}


def test_the_student_bundle_has_the_skeletons_and_the_grader_and_no_solution(tmp_path, released):
    with zipfile.ZipFile(released / "lab.zip") as bundle:
        files = bundle.namelist()
        bundle.extractall(tmp_path / "x")
    assert "concurrency-lab/assignment/report.ipynb" in files and "concurrency-lab/locustfile.py" in files
    assert not any("/solution/" in name or "/tests/" in name or "/hidden/" in name for name in files)
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
    assert "0 / 1 points" in printed and "single_server.py: serve() is not written yet" in printed
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
    with pytest.raises(ReleaseError, match="nothing written"):
        student_bundle(tmp_path / "lab.zip")
    assert not (tmp_path / "lab.zip").exists()


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


def test_the_grader_requirements_leave_out_nbgrader_and_pin_the_rest(released):
    from autograder import KIT

    with zipfile.ZipFile(released / "autograder.zip") as bundle:
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


# Gradescope ------------------------------------------------------------------------------------


def upload(folder: Path, files: dict[str, bytes]) -> Path:
    """Lay files out as an upload's extracted zip ({path: bytes}); folder."""
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def extras(handed_out: dict[str, bytes], tmp_path: Path) -> dict[str, bytes]:
    """What lies beside the assignment's files in students' zips: a README, macOS's __MACOSX folder (its
    AppleDouble files named like the files), a __pycache__ with a real .pyc."""
    source = tmp_path / "handler.py"
    source.write_bytes(handed_out["concurrency-lab/assignment/handler.py"])
    pyc = py_compile.compile(str(source), cfile=str(tmp_path / "handler.pyc"), doraise=True)
    apple = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(64)
    return {
        "concurrency-lab/README.md": b"# My concurrency lab\n",
        "__MACOSX/concurrency-lab/assignment/._handler.py": apple,
        "__MACOSX/concurrency-lab/assignment/._threadpool_server.py": apple,
        "concurrency-lab/assignment/__pycache__/handler.cpython-311.pyc": Path(pyc).read_bytes(),
    }


def gradescope(
    root: Path, released: Path, files: dict[str, bytes], *options: str, python=sys.executable, runner=subprocess.run
) -> dict:
    """Run the bundle's run_autograder as Gradescope would, with /autograder moved to root: the bundle in
    root/source, the upload (files, {path: bytes}) in root/submission; its results.json. runner: what runs
    it (subprocess.run, or a stand-in that runs it in a container)."""
    with zipfile.ZipFile(released / "autograder.zip") as bundle:
        bundle.extractall(root / "source")
    assert {"setup.sh", "run_autograder", "requirements-grader.txt"} <= {p.name for p in (root / "source").iterdir()}
    upload(root / "submission", files)
    (root / "submission").mkdir(exist_ok=True)
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "PYTHON": str(python)}
    env.pop("PYTHONPATH", None)
    run = runner(
        ["bash", root / "source" / "run_autograder", *options], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    return json.loads((root / "results" / "results.json").read_text())


def reference_files(prefix: str = "") -> dict[str, bytes]:
    return {f"{prefix}{name}": (SOLUTION / name).read_bytes() for name in SERVER_FILES + OPTIONAL_FILES}


ECHO = ("--mode", "single", "--mode", "threadpool", "--check", "echo")  # one basic check, one optional


@pytest.mark.parametrize("kind", ["as handed out", "the reference, in the zip's folders", "not gradable"])
def test_run_autograder_grades_what_students_hand_in_as_gradescope_lays_it_out(tmp_path, released, handed_out, kind):
    """The upload is the students' zip's assignment folder (the skeletons, the optional ones among them),
    nested, with extra files beside it; filled in with the reference; or without handler.py."""
    files = {**handed_out, **extras(handed_out, tmp_path)}
    if kind.startswith("the reference"):
        files |= reference_files("concurrency-lab/assignment/")
    if kind == "not gradable":
        del files["concurrency-lab/assignment/handler.py"]
    found = gradescope(tmp_path / "root", released, files, *ECHO)
    assert gradescope_accepts(found), found
    graded = {test["tags"][1]: test for test in found["tests"]}
    if kind == "as handed out":  # the optional skeletons are the skeletons: not handed in, not graded
        assert found["score"] == 0 and found["visibility"] == "visible" and set(graded) == {"single"}
        assert "serve() in single_server.py is not implemented yet" in graded["single"]["output"]
        assert "Optional part" not in found["output"] and "fault" not in found["output"]
    elif kind == "not gradable":
        assert found["score"] == 0 and found["output"].startswith("not gradable: missing handler.py")
    else:
        assert found["score"] == 1 and found["visibility"] == "visible", found["output"]
        assert {mode: test["status"] for mode, test in graded.items()} == {"single": "passed", "threadpool": "passed"}
        assert "Optional part, apart from that score: 1 / 1 points" in found["output"]


def test_run_autograder_hides_a_result_that_holds_a_grader_fault(tmp_path, released):
    """A selection that matches no check is a fault of the grader (exit 3): its result is published, and
    hidden from the student."""
    found = gradescope(tmp_path, released, reference_files(), "--mode", "single", "--check", "no-such-check")
    assert gradescope_accepts(found), found
    assert found["visibility"] == "hidden" and found["score"] == 0
    assert "The grader had a fault, so this is not a grade: no check matched the selection" in found["output"]


def fake_grader(tmp_path: Path, root_variable: str, results_path: str) -> Path:
    """A stand-in for the grader's Python that writes a perfect result (where --json says, and where the
    platform reads it), then says Killed and exits 1, as a grader killed by the OOM killer would."""
    fake = tmp_path / "fake-python"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        'forged=\'{"score": 100, "gradable": true, "tests": []}\'\n'
        'for a in "$@"; do if [ "$prev" = --json ]; then echo "$forged" > "$a"; fi; prev=$a; done\n'
        f'echo "$forged" > "${root_variable}/{results_path}"\n'
        "echo 'Killed' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    return fake


def test_run_autograder_publishes_only_what_the_grader_wrote_and_ended_well(tmp_path, released):
    """A grader that crashes gets a result that says the grader failed, never what is on disk."""
    fake = fake_grader(tmp_path, "AUTOGRADER_ROOT", "results/results.json")
    with zipfile.ZipFile(released / "autograder.zip") as bundle:
        bundle.extractall(tmp_path / "source")
    (tmp_path / "submission").mkdir()
    env = {**os.environ, "AUTOGRADER_ROOT": str(tmp_path), "PYTHON": str(fake)}
    run = subprocess.run(["bash", tmp_path / "source" / "run_autograder"], env=env, capture_output=True, timeout=60)
    assert run.returncode == 0
    found = json.loads((tmp_path / "results" / "results.json").read_text())
    assert found["score"] == 0 and found["visibility"] == "hidden"
    assert found["output"].startswith("The grader failed (exit status 1), so this is not a grade: Killed")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("bwrap"), reason="isolation needs root and bubblewrap")
def test_run_autograder_grades_a_forging_submission_at_its_honest_score(tmp_path, released):
    from test_attacks import FORGE, hostile

    submission = hostile(tmp_path / "forger", FORGE)
    files = {name: (submission / name).read_bytes() for name in SERVER_FILES}
    found = gradescope(tmp_path / "root", released, files, "--mode", "single", "--check", "echo")
    assert found["score"] == 0 and found["tests"] and "forged" not in json.dumps(found)


VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


def gradescope_accepts(found: dict) -> bool:
    """Whether results.json has the form Gradescope reads: a score (or scored tests), each test with its
    score, max_score, name, status and output, and known visibilities."""
    tests = found.get("tests", [])
    scored = isinstance(found.get("score"), int | float) or (tests and all("score" in t for t in tests))
    return bool(
        scored
        and isinstance(found.get("output", ""), str)
        and found.get("visibility", "visible") in VISIBILITY
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


def grader_like(problems: list[str], hidden: bool = False) -> SimpleNamespace:
    """What results' writers read of a Grader: three checks (one optional), and problems."""
    checks = [
        Result("1.1", "protocol", "The body echoes the request", "single", "", 1, 1, "passed", "ok"),
        Result("1.2", "protocol", "Other requests", "single", "", 0, 2, "failed", "a 6 KiB head", hidden=hidden),
        Result("6.1", "optional", "The body echoes the request", "threadpool", "", 1, 1, "passed", "ok"),
    ]
    return SimpleNamespace(results=checks, problems=problems, advice=[], isolation=SimpleNamespace(warning=""))


def test_a_result_that_holds_a_grader_fault_is_hidden_and_says_why():
    fault = "3.4 Listens only on the given host: psutil.AccessDenied"
    faulty = results.gradescope(grader_like([fault]), 12.0)
    assert faulty["visibility"] == "hidden" and fault in faulty["output"]
    assert "not a grade" in faulty["output"] and "Hidden from the student" in faulty["output"]
    interrupted = results.gradescope(grader_like([]), 12.0, interrupted="SIGTERM")
    assert interrupted["visibility"] == "hidden"
    graded = results.gradescope(grader_like([]), 12.0)
    assert graded["visibility"] == "visible" and "Hidden" not in graded["output"] and graded["score"] == 1
    assert gradescope_accepts(faulty) and gradescope_accepts(graded)


# Gradescope's image: setup.sh ------------------------------------------------------------------


def ubuntu(tmp_path: Path, release: str) -> tuple[Path, Path, Path]:
    """A stand-in for Gradescope's Ubuntu image: (root, bin, log). bin/ holds apt-get (it logs what it is
    asked; installing python3.11 puts a real Python 3.11 or newer there, unless the archive has none) and
    python3: on "22.04" a 3.10 that answers its version and builds nothing, on "24.04" a real Python of
    3.11 or newer (this one's base interpreter); bin/ is the whole PATH. root/source has setup.sh as the
    bundle ships it, and requirements that install nothing."""
    root, bin_, log = tmp_path / "autograder", tmp_path / "bin", tmp_path / "asked.log"
    (root / "source").mkdir(parents=True)
    bin_.mkdir()
    (root / "source" / "requirements-grader.txt").write_text("# nothing: setup.sh's choice is what is tested\n")
    (root / "source" / "setup.sh").write_text(SETUP_SH)
    real = os.path.realpath(sys.executable)
    python311 = f'/bin/ln -s {real} {bin_}/python3.11; echo "installed python3.11" >> {log}'
    if release == "none":
        python311 = 'echo "E: Unable to locate package python3.11" >&2; exit 100'
    (bin_ / "apt-get").write_text(
        "#!/bin/bash\n"
        f'echo "apt-get $*" >> {log}\n'
        'if [ "$1" = install ]; then for package in "$@"; do\n'
        f'  if [ "$package" = python3.11 ]; then {python311}; fi\n'
        "done; fi\n"
    )
    if release == "24.04":
        (bin_ / "python3").symlink_to(real)
    else:
        (bin_ / "python3").write_text(
            "#!/bin/bash\n"
            f'echo "python3 $*" >> {log}\n'
            'case "$1" in -c) echo "3 10" ;; --version) echo "Python 3.10.12" ;; *) exit 1 ;; esac\n'
        )
    for program in bin_.iterdir():
        program.chmod(0o755)
    return root, bin_, log


def setup_sh(root: Path, bin_: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {"PATH": str(bin_), "HOME": os.environ.get("HOME", "/root"), "AUTOGRADER_ROOT": str(root)}
    command = ["/bin/bash", root / "source" / "setup.sh"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("release", ["22.04", "24.04", "none"])
def test_setup_sh_builds_the_grader_venv_with_a_python_of_3_11_or_newer(tmp_path, release):
    """22.04: python3 is 3.10, so python3.11 and python3.11-venv come from the archive and build the venv;
    24.04: python3 (3.12 there) builds it; a system with no Python 3.11 or newer: a clear refusal."""
    root, bin_, log = ubuntu(tmp_path, release)
    run = setup_sh(root, bin_)
    asked = log.read_text().splitlines()
    if release == "none":
        assert run.returncode != 0 and not (root / "venv").exists()
        assert "the grader needs Python 3.11 or newer: python3 is Python 3.10.12" in run.stderr
        return
    assert run.returncode == 0, run.stderr
    chosen = "python3.11" if release == "22.04" else "python3"
    config = dict(line.split(" = ", 1) for line in (root / "venv" / "pyvenv.cfg").read_text().splitlines() if line)
    assert config["command"].startswith(f"{bin_ / chosen} -m venv "), config
    version = subprocess.run(
        [root / "venv" / "bin" / "python", "-c", "import sys; print(*sys.version_info[:2])"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert tuple(map(int, version.stdout.split())) >= (3, 11)
    installs = [line for line in asked if line.startswith("apt-get install")]
    if release == "22.04":
        assert "apt-get install -y -qq python3.11 python3.11-venv" in installs and "installed python3.11" in asked
        assert not any(line.startswith("python3 -m") for line in asked)  # the 3.10 built nothing
    else:
        assert "apt-get install -y -qq python3-venv" in installs and not any("python3.11" in line for line in asked)


@pytest.fixture(scope="module")
def grader_only_python(tmp_path_factory, released) -> Path:
    """A real run of setup.sh (apt-get a stand-in, python3 this machine's Python): the grader's venv,
    requirements-grader.txt installed from PyPI (about 12 s here, with pip's cache). Its Python."""
    folder = tmp_path_factory.mktemp("gradescope-image")
    root, bin_, _ = ubuntu(folder, "24.04")
    with zipfile.ZipFile(released / "autograder.zip") as bundle:
        (root / "source" / "requirements-grader.txt").write_bytes(bundle.read("requirements-grader.txt"))
        assert bundle.read("setup.sh").decode() == (root / "source" / "setup.sh").read_text()
    run = setup_sh(root, bin_, timeout=600)
    assert run.returncode == 0, run.stderr
    python = root / "venv" / "bin" / "python"
    missing = subprocess.run([python, "-c", "import nbgrader"], capture_output=True, timeout=60)
    assert missing.returncode != 0  # the image has no nbgrader: the grader must not need it
    return python


@pytest.mark.parametrize("kind", ["good", "not gradable", "crashing"])
def test_run_autograder_works_in_the_image_it_targets(tmp_path, grader_only_python, released, kind):
    """The files uploaded one by one (at the submission's top), the optional ones among them."""
    files = reference_files()
    if kind == "not gradable":
        del files["handler.py"]
    if kind == "crashing":
        files["single_server.py"] = b"raise RuntimeError('crashed at start-up')\n"
    found = gradescope(tmp_path, released, files, "--mode", "single", "--check", "echo", python=grader_only_python)
    assert gradescope_accepts(found), found
    assert found["score"] == {"good": 1, "not gradable": 0, "crashing": 0}[kind]
    if kind == "not gradable":
        assert found["output"].startswith("not gradable: missing handler.py")
    if kind == "crashing":
        assert "crashed at start-up" in found["tests"][0]["output"]


# PrairieLearn ----------------------------------------------------------------------------------


def test_the_prairielearn_release_holds_the_question_its_grader_and_image_and_no_solution(released, handed_out):
    folder = released / "prairielearn"
    question = folder / PRAIRIELEARN_QUESTION
    assert check_extracted(folder) == []
    info = json.loads((question / "info.json").read_text())
    assert info["type"] == "v3" and info["gradingMethod"] == "External" and len(info["uuid"]) == 36
    options = info["externalGradingOptions"]
    assert options["image"] == IMAGE and options["entrypoint"] == "/grade/tests/run.sh"
    assert PRAIRIELEARN_GRADING + 20 <= options["timeout"] == PRAIRIELEARN_TIMEOUT <= 600  # PrairieLearn's maximum
    assert (question / "tests" / "run.sh").stat().st_mode & 0o111
    assert (question / "tests" / HIDDEN.relative_to(HIDDEN.parents[2]) / "check_hidden.py").is_file()
    for name in OPTIONAL_FILES:  # the skeletons that tell an optional file as given from one that was done
        assert (question / "tests" / "assignment" / name).read_bytes() == handed_out[
            f"concurrency-lab/assignment/{name}"
        ]
    html = (question / "question.html").read_text()
    assert f'file-names="{", ".join(SERVER_FILES)}"' in html and ", ".join(OPTIONAL_FILES) in html
    assert (folder / "image" / "setup.sh").read_text() == SETUP_SH
    assert "FROM ubuntu:24.04" in (folder / "image" / "Dockerfile").read_text()
    assert "locust==" in (folder / "image" / "requirements-grader.txt").read_text()
    assert str(PRAIRIELEARN_TIMEOUT) in (folder / "README.md").read_text()


def test_a_prairielearn_release_replaces_an_earlier_one_and_nothing_else(tmp_path):
    out = tmp_path / "pl"
    prairielearn_release(out)
    stale = out / PRAIRIELEARN_QUESTION / "tests" / "autograder" / "checks" / "check_gone.py"
    stale.write_text("def test_gone(): pass\n")
    prairielearn_release(out)
    assert not stale.exists() and (out / PRAIRIELEARN_QUESTION / "tests" / "run.sh").is_file()
    other = tmp_path / "course"
    (other / "questions").mkdir(parents=True)
    with pytest.raises(ReleaseError, match="other files than a PrairieLearn release"):
        prairielearn_release(other)
    assert [p.name for p in other.iterdir()] == ["questions"]


def prairielearn(
    root: Path, released: Path, files: dict[str, bytes], *options: str, runner=subprocess.run, **env: str
) -> dict:
    """Run the question's tests/run.sh as PrairieLearn's grader does, with /grade moved to root: the
    question's tests/ in root/tests, the student's files (flat, as pl-file-upload sends them) in
    root/student; its results.json, checked against PrairieLearn's format."""
    shutil.copytree(released / "prairielearn" / PRAIRIELEARN_QUESTION / "tests", root / "tests")
    upload(root / "student", files)
    upload(root / "data", {"data.json": b"{}"})
    environment = {**os.environ, "GRADE_ROOT": str(root), "PYTHON": sys.executable, **env}
    environment.pop("PYTHONPATH", None)
    run = runner([root / "tests" / "run.sh", *options], env=environment, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr  # else PrairieLearn reads no results.json at all
    path = root / "results" / "results.json"
    assert path.stat().st_size < 1 << 20  # PrairieLearn's limit
    found = json.loads(path.read_text())
    assert prairielearn_accepts(found), found
    return found


def prairielearn_accepts(found: dict) -> bool:
    """Whether results.json is what PrairieLearn records: gradable false (no score, so none is recorded),
    or a score from 0 to 1; each test with a name, points and max_points (all of them have both, or
    PrairieLearn shows no points), a message and an output."""
    number = (int, float)
    if found.get("gradable", True):
        scored = isinstance(found.get("score"), number) and 0 <= found["score"] <= 1
    else:
        scored = found["gradable"] is False and "score" not in found and isinstance(found.get("message"), str)
    return scored and all(
        isinstance(t["name"], str)
        and isinstance(t["points"], number)
        and isinstance(t["max_points"], number)
        and isinstance(t["message"], str)
        and isinstance(t["output"], str)
        for t in found.get("tests", [])
    )


def test_run_sh_grades_the_reference_into_prairielearns_results_json(tmp_path, released):
    found = prairielearn(tmp_path, released, reference_files(), *ECHO)
    assert found["gradable"] is True and found["score"] == 1.0, found["message"]
    single, threadpool = found["tests"]
    assert (single["points"], single["max_points"]) == (1, 1) and single["name"].endswith(": single")
    assert (threadpool["points"], threadpool["max_points"]) == (0, 0)  # beside the 100: not in the total
    assert "optional part, beside the 100: 1 / 1 points" in threadpool["message"]


def test_run_sh_says_why_a_submission_is_not_gradable(tmp_path, released):
    files = reference_files()
    del files["handler.py"]
    found = prairielearn(tmp_path, released, files, "--mode", "single", "--check", "echo")
    assert found["gradable"] is False and found["message"].startswith("not gradable: missing handler.py")
    assert found["format_errors"][0].startswith("missing handler.py")


def test_run_sh_stops_a_grading_past_its_time_and_records_no_grade(tmp_path, released):
    """GRADING_SECONDS=3 against servers that sleep before they listen (the grader waits 10 s for a
    server to be ready): stopped, and not a grade."""
    silent = mutant(tmp_path / "silent", "handler.py", "import argparse\n", "import time\n\ntime.sleep(60)\n")
    files = {name: (silent / name).read_bytes() for name in SERVER_FILES}
    found = prairielearn(
        tmp_path / "grade", released, files, "--mode", "single", "--check", "echo", GRADING_SECONDS="3"
    )
    assert found["gradable"] is False and found["message"].startswith("Not a grade, and not counted: ")
    assert "stopped" in found["message"]


def test_run_sh_publishes_only_what_the_grader_wrote_and_ended_well(tmp_path, released):
    fake = fake_grader(tmp_path, "GRADE_ROOT", "results/results.json")
    found = prairielearn(tmp_path / "grade", released, reference_files(), PYTHON=str(fake))
    assert found == {
        "gradable": False,
        "message": "Not a grade, and not counted: the grader failed (exit status 1): Killed",
        "tests": [],
    }


def test_run_sh_works_in_the_image_it_targets(tmp_path, released, grader_only_python):
    found = prairielearn(tmp_path, released, reference_files(), *ECHO, PYTHON=str(grader_only_python))
    assert found["gradable"] is True and found["score"] == 1.0


def test_prairielearns_results_record_no_score_for_a_fault_and_keep_hidden_checks_hidden(tmp_path):
    """The grade command's writers (write_prairielearn, and its not-gradable variant) and the conversion
    from Gradescope's results.json, which run.sh uses: a fault or an interruption is no grade; the hidden
    check is one test without its feedback; the optional one is 0 of 0 with its points in its message."""
    assert (results.NOT_GRADABLE_EXIT, results.GRADER_FAULT_EXIT, results.INTERRUPTED_EXIT) == (
        grade.NOT_GRADABLE,
        grade.GRADER_FAULT,
        grade.INTERRUPTED,
    )
    results.write_prairielearn(tmp_path / "graded.json", grader_like([], hidden=True), 12.0)
    graded = json.loads((tmp_path / "graded.json").read_text())
    assert prairielearn_accepts(graded) and graded["gradable"] is True and graded["score"] == 0.3333
    shown, optional, hidden = graded["tests"]
    assert (shown["points"], shown["max_points"], optional["points"], optional["max_points"]) == (1, 1, 0, 0)
    assert hidden["name"] == "Hidden checks" and (hidden["points"], hidden["max_points"]) == (0, 2)
    assert "6 KiB" not in json.dumps(graded) and "Other requests" not in json.dumps(graded)
    for problems, interrupted in ((["3.4: psutil.AccessDenied"], ""), ([], "SIGTERM")):
        results.write_prairielearn(tmp_path / "not.json", grader_like(problems), 12.0, interrupted)
        not_a_grade = json.loads((tmp_path / "not.json").read_text())
        assert prairielearn_accepts(not_a_grade) and not_a_grade["gradable"] is False
        assert not_a_grade["message"].startswith("Not a grade, and not counted: ") and "score" not in not_a_grade
        assert "Hidden from the student" not in not_a_grade["message"]  # Gradescope's note: PrairieLearn shows it
    results.write_prairielearn_not_gradable(tmp_path / "ng.json", "missing handler.py in upload/")
    assert json.loads((tmp_path / "ng.json").read_text()) == {
        "gradable": False,
        "message": "not gradable: missing handler.py in upload/",
        "format_errors": ["missing handler.py in upload/"],
    }
    gradescope_file = tmp_path / "gradescope.json"
    results.write_gradescope(gradescope_file, grader_like([]), 12.0)
    command = [sys.executable, "-m", "autograder.results", "--to-prairielearn", gradescope_file, tmp_path / "pl.json"]
    subprocess.run([*command, "--exit-status", "0"], check=True, timeout=60)
    assert json.loads((tmp_path / "pl.json").read_text())["score"] == 0.3333
