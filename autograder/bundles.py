"""What leaves the instructor's hands: the students' bundle, the Gradescope autograder (a zip), and the
PrairieLearn question with its grading image (a folder).

None ever holds solution/: each is checked for solution code before it is written.
"""

import json
import shutil
import uuid
import zipfile
from pathlib import Path

from autograder import ASSIGNMENT, KIT, OPTIONAL_FILES, SERVER_FILES, release
from autograder.marks import HIDDEN

# the grader's own requirements (no nbgrader, no matplotlib); locust 2.47.0 needs Python 3.11 or newer
GRADER_PACKAGES = ("locust", "pytest", "pytest-timeout", "pytest-xdist", "psutil", "rich", "requests")

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder image (Ubuntu, as root); PrairieLearn's
# grading image runs it too (image/Dockerfile). The grader needs Python 3.11 or newer: python3 where it
# is (Ubuntu 24.04: 3.12), else python3.11 from Ubuntu's own archive (Ubuntu 22.04, whose python3 is 3.10).
# AUTOGRADER_ROOT moves /autograder (the venv goes to $root/venv, the requirements are in $root/source).
set -euo pipefail
root=${AUTOGRADER_ROOT:-/autograder}
export DEBIAN_FRONTEND=noninteractive
recent() {  # whether $1 is a Python 3.11 or newer
  local version
  version=$("$1" -c 'import sys; print(*sys.version_info[:2])' 2>/dev/null) || return 1
  read -r major minor <<< "$version"
  [ "$major" -gt 3 ] || { [ "$major" -eq 3 ] && [ "$minor" -ge 11 ]; }
}
apt-get update -qq
apt-get install -y -qq python3 bubblewrap
if recent python3; then
  apt-get install -y -qq python3-venv  # venv's pip, which Ubuntu packages apart
  python=python3
elif apt-get install -y -qq python3.11 python3.11-venv && recent python3.11; then
  python=python3.11
else
  echo "setup.sh: the grader needs Python 3.11 or newer: python3 is $(python3 --version 2>&1)," \\
    "and python3.11 could not be installed from this system's archive (use Ubuntu 22.04 or 24.04)" >&2
  exit 1
fi
echo "setup.sh: the grader's environment is built with $(command -v "$python") ($("$python" --version 2>&1))"
"$python" -m venv "$root/venv"
"$root/venv/bin/python" -m pip install --quiet -r "$root/source/requirements-grader.txt"
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this for each submission; it writes /autograder/results/results.json.
# Options given to it go to `python -m autograder grade` (e.g. --mode single).
# Only the grader's own result is published: it writes it where no submission can reach, and only
# when it ends as a grader should (0 graded, 2 not gradable, 3 grader fault); else the result says
# that the grader failed. Servers must run isolated (--require-isolation).
set -uo pipefail
root=${AUTOGRADER_ROOT:-/autograder}
python=${PYTHON:-$root/venv/bin/python}
results="$root/results/results.json"
mkdir -p "$root/results"
rm -f "$results"
chmod 700 "$root/source" "$root/submission" "$root/results" 2>/dev/null
handler=$(find "$root/submission" -name handler.py -not -path '*/__MACOSX/*' -printf '%d %p\n' |
  sort -n | head -n 1 | cut -d ' ' -f 2-)  # the shallowest, if there are several
submission=$(dirname "${handler:-$root/submission/handler.py}")
private=$(mktemp -d)
trap 'rm -rf "$private"' EXIT
cd "$root/source"
"$python" -m autograder grade "$submission" --require-isolation --json "$private/results.json" "$@" \
  2> "$private/stderr.txt"
status=$?
cat "$private/stderr.txt" >&2
case $status in
  0|2|3) ok=yes ;;
  *) ok=no ;;
esac
if [ "$ok" = yes ] && [ -s "$private/results.json" ]; then
  cp "$private/results.json" "$results"
else
  reason=$(tail -n 1 "$private/stderr.txt" | tr -d '"\\[:cntrl:]' | cut -c 1-500)
  printf '{"score": 0, "visibility": "hidden", "tests": [], "output": "%s"}\n' \
    "The grader failed (exit status $status), so this is not a grade: $reason" > "$results"
fi
exit 0
"""


# PrairieLearn: the grading job's time (info.json's timeout) and the grading's own bound within it, so that
# a grading that runs long is stopped (as Ctrl-C stops it) and writes what it has before PrairieLearn kills
# the container. The reference's times at half a CPU and at one: benchmarks/results/grading.md (under half of
# the bound). Measured earlier at 0.9 of a CPU (PrairieLearn's default quota), the machine busy: servers that
# never reply 127 s (the grader's 120 s limit per worker ends it); servers that never print their ready line
# 145 s (waits for it are not counted in that limit). 210 s leaves that slowest a margin of about half.
PRAIRIELEARN_TIMEOUT = 240  # PrairieLearn's default is 30 s, its maximum 600 s
PRAIRIELEARN_GRADING = PRAIRIELEARN_TIMEOUT - 30  # what the grader may still take after SIGTERM (20 s), and more
PRAIRIELEARN_QUESTION = "questions/concurrency-lab"
PRAIRIELEARN_IMAGE = "DOCKERHUB_ACCOUNT/concurrency-lab-grader"  # a placeholder: --prairielearn-image
PRAIRIELEARN_PYTHON = "/opt/concurrency-lab/venv/bin/python"  # where image/Dockerfile's setup.sh puts it

RUN_PRAIRIELEARN = r"""#!/usr/bin/env bash
# PrairieLearn's external grader runs this for each submission, in the question's image (image/ of the
# release): the student's files are in /grade/student, this grader in /grade/tests, and the result goes
# to /grade/results/results.json as PrairieLearn reads it (score 0 to 1, or gradable false: no grade).
# Options given to it go to `python -m autograder grade` (e.g. --mode single). As Gradescope's
# run_autograder: only the grader's own result is published, and only when it ends as a grader should;
# servers must run isolated. A grading past GRADING_SECONDS is stopped (SIGTERM, as Ctrl-C stops it: it
# writes what it has), which is not a grade. GRADE_ROOT moves /grade; PYTHON is the grader's interpreter.
set -uo pipefail
root=${GRADE_ROOT:-/grade}
python=${PYTHON:-@PYTHON@}
seconds=${GRADING_SECONDS:-@SECONDS@}
results="$root/results/results.json"
mkdir -p "$root/results"
rm -f "$results"
chmod 700 "$root/tests" "$root/student" "$root/results" "$root/data" 2>/dev/null
private=$(mktemp -d)
trap 'rm -rf "$private"' EXIT
cd "$root/tests"
timeout --foreground -s TERM -k 20 "$seconds" \
  "$python" -m autograder grade "$root/student" --require-isolation --json "$private/results.json" "$@" \
  2> "$private/stderr.txt"
status=$?
cat "$private/stderr.txt" >&2
failed="the grader failed (exit status $status)"
if [ "$status" = 124 ]; then
  status=130  # stopped by timeout: the grader's exit status when interrupted
  failed="grading took longer than $seconds s and was stopped"
fi
case $status in
  0|2|3|130) ok=yes ;;
  *) ok=no ;;
esac
if [ "$ok" = yes ] && [ -s "$private/results.json" ] &&
  "$python" -m autograder.results --to-prairielearn "$private/results.json" "$results" --exit-status "$status"; then
  exit 0
fi
reason=$(tail -n 1 "$private/stderr.txt" | tr -d '"\\[:cntrl:]' | cut -c 1-500)
printf '{"gradable": false, "message": "%s", "tests": []}\n' "Not a grade, and not counted: $failed: $reason" \
  > "$results"
exit 0
"""

DOCKERFILE = """# The grading image of the PrairieLearn question: Ubuntu 24.04, its python3 (3.12), the grader's
# requirements in /opt/concurrency-lab/venv, bubblewrap; built by setup.sh, the script Gradescope runs.
# Build and push (PrairieLearn runs linux/amd64 images):
#   docker build --platform linux/amd64 -t DOCKERHUB_ACCOUNT/concurrency-lab-grader .
#   docker push DOCKERHUB_ACCOUNT/concurrency-lab-grader
FROM ubuntu:24.04
COPY setup.sh requirements-grader.txt /opt/concurrency-lab/source/
RUN AUTOGRADER_ROOT=/opt/concurrency-lab PIP_NO_CACHE_DIR=1 bash /opt/concurrency-lab/source/setup.sh \\
    && rm -rf /var/lib/apt/lists/*
"""

QUESTION_HTML = """<pl-question-panel>
  <p>
    Concurrency Lab: upload your servers, as the handout describes them:
    <code>handler.py</code>, <code>single_server.py</code>, <code>multiprocess_server.py</code> and
    <code>multithread_server.py</code>; and, if you did the optional part, <code>threadpool_server.py</code>
    and <code>eventloop_server.py</code>. The grader runs them on 127.0.0.1 and checks the protocol,
    concurrency, resource hygiene, the start methods and a short load; grading takes about a minute.
  </p>
  <pl-file-upload file-names="@REQUIRED@" optional-file-names="@OPTIONAL@"></pl-file-upload>
</pl-question-panel>

<pl-submission-panel>
  <pl-external-grader-results></pl-external-grader-results>
  <pl-file-preview></pl-file-preview>
</pl-submission-panel>
"""

PRAIRIELEARN_README = """# Concurrency Lab on PrairieLearn

Written by `python -m autograder release --prairielearn DIR`; release again after changing the grader.

- `image/`: the grading image (`Dockerfile`, and `setup.sh`, the script of Gradescope's bundle, with the
  grader's requirements). PrairieLearn's graders run without network, so the packages are in the image.
  Build it for `linux/amd64`, push it to Docker Hub (commands in the `Dockerfile`), then sync it on the
  course's Sync page.
- `questions/concurrency-lab/`: the question. Copy it into the course's `questions/` folder and add it to
  an assessment. `info.json` names the image (`--prairielearn-image` at release, or edit it), runs
  `tests/run.sh` for each submission, and gives a grading job @TIMEOUT@ s: `run.sh` stops the grading at
  @SECONDS@ s. Measured here at 0.9 of a CPU (what PrairieLearn's graders give a job by default): the
  reference 36 s; the slowest submissions tried (servers that never reply, or never start) 127 and 145 s.
  `tests/` holds the grader, hidden checks included; students never see it.
- Its `uuid` is the same at every release: keep it once students have submitted (it is how PrairieLearn
  knows the question), and change it only for a second copy of the question in the same course.

What students get back: the score is the share of the 100 points; each check is a test with its points
and feedback; the optional part's checks show their points in their message (beside the 100, 0 of 0 in
the total); the hidden checks are one line (how many passed, not which). A submission that cannot be
graded (a missing or broken required file) is "invalid, not gradable" with the reason, and uses no
attempt; so is a grading that had a fault of the grader, or ran past @SECONDS@ s and was stopped.

Isolation: in PrairieLearn's Docker containers bubblewrap cannot create namespaces, so each server runs as
a runner uid of its own (the kit's docs/security.md, "Where a server runs"); the grader passes
`--require-isolation`, so a container where that cannot be had gives no grade (gradable false, with the
reason), never an unisolated one. Tested by the kit: the release, and `run.sh` with `/grade` moved
(`GRADE_ROOT`). Not tested: the image itself (no test builds it) and a real PrairieLearn.
"""


def _grader_files(hidden: bool = True) -> list[Path]:
    """The grader's files; without hidden, the hidden checks left out (the students' bundle)."""
    package = KIT / "autograder"
    files = [p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return sorted(p for p in files if hidden or not p.is_relative_to(HIDDEN))


def _grader(skeletons: Path, prefix: str = "") -> dict[str, bytes | str]:
    """What grading needs, by path: the grader (hidden checks included), the locustfile and the skeletons
    (by which the grader tells an optional file as given from one that was done)."""
    files: dict[str, bytes | str] = {f"{prefix}locustfile.py": (KIT / "locustfile.py").read_bytes()}
    for path in _grader_files():
        files[f"{prefix}{path.relative_to(KIT)}"] = path.read_bytes()
    for path in sorted(skeletons.glob("*.py")):
        files[f"{prefix}{ASSIGNMENT.relative_to(KIT)}/{path.name}"] = path.read_bytes()
    return files


def _hidden_lines() -> set[str]:
    """The definition lines of the hidden checks: a file holding one of them gives them away."""
    lines = set()
    for path in HIDDEN.glob("*.py"):
        lines |= {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("def ")}
    return lines


def _requirements(packages: tuple[str, ...] | None = None) -> str:
    lines = (KIT / "requirements.txt").read_text().splitlines()
    pins = [line for line in lines if line and not line.startswith("#")]
    if packages is not None:
        pins = [pin for pin in pins if pin.split("==")[0] in packages]
    return "\n".join(pins) + "\n"


def leaked(name: str, data: bytes) -> bool:
    """Whether a file of a bundle gives a solution away (release.gives_away, by the file's name)."""
    return release.gives_away(Path(name).name, data.decode("utf-8", errors="replace"))


def hidden_leaked(data: bytes, hidden: set[str] | None = None) -> bool:
    """Whether a file of the students' bundle holds a hidden check (hidden: _hidden_lines(), read once
    for a whole bundle)."""
    text = {line.strip() for line in data.decode("utf-8", errors="replace").splitlines()}
    return bool(text & (_hidden_lines() if hidden is None else hidden))


def _staged(files: dict[str, bytes | str], students: bool = False) -> dict[str, bytes]:
    """files as bytes, or ReleaseError if one gives a solution (or, for students, a hidden check) away."""
    staging = {name: data.encode() if isinstance(data, str) else data for name, data in files.items()}
    hidden = _hidden_lines() if students else set()
    leaks = [name for name, data in staging.items() if leaked(name, data) or hidden_leaked(data, hidden)]
    if leaks:
        raise release.ReleaseError(f"solution code in {', '.join(leaks)}: nothing written")
    return staging


def _write(out: Path, files: dict[str, bytes | str], executable: tuple[str, ...] = (), students: bool = False) -> None:
    staging = _staged(files, students)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in sorted(staging.items()):
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if name in executable else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(info, data)


def student_bundle(out: Path, skeletons: Path = ASSIGNMENT) -> list[str]:
    """The skeletons, the notebook, the locustfile, the handouts, the requirements and the grader."""
    files: dict[str, bytes | str] = {}
    for path in sorted(skeletons.iterdir()):
        if path.is_file():
            files[f"concurrency-lab/assignment/{path.name}"] = path.read_bytes()
    for name in ("locustfile.py", "requirements.txt", "pyproject.toml"):
        files[f"concurrency-lab/{name}"] = (KIT / name).read_bytes()
    for path in sorted(KIT.glob("handout*.md")):
        files[f"concurrency-lab/{path.name}"] = path.read_bytes()
    for path in _grader_files(hidden=False):
        files[f"concurrency-lab/{path.relative_to(KIT)}"] = path.read_bytes()
    _write(out, files, students=True)
    return sorted(files)


def gradescope_bundle(out: Path, skeletons: Path = ASSIGNMENT) -> list[str]:
    """setup.sh and run_autograder at the root; the grader, the locustfile and the skeletons beside them."""
    files: dict[str, bytes | str] = {"setup.sh": SETUP_SH, "run_autograder": RUN_AUTOGRADER}
    files["requirements-grader.txt"] = _requirements(GRADER_PACKAGES)
    files |= _grader(skeletons)
    _write(out, files, executable=("setup.sh", "run_autograder"))
    return sorted(files)


def prairielearn_info(image: str = PRAIRIELEARN_IMAGE) -> dict:
    """The question's info.json: graded externally, in image, by tests/run.sh, within PRAIRIELEARN_TIMEOUT."""
    return {
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, "concurrency-lab/servers")),  # the same at every release
        "title": "Concurrency Lab: the servers",
        "topic": "Concurrency",
        "tags": ["code", "concurrency-lab"],
        "type": "v3",
        "singleVariant": True,
        "gradingMethod": "External",
        "externalGradingOptions": {
            "image": image,
            "entrypoint": "/grade/tests/run.sh",
            "timeout": PRAIRIELEARN_TIMEOUT,
            "enableNetworking": False,
        },
    }


def prairielearn_release(out: Path, image: str = PRAIRIELEARN_IMAGE, skeletons: Path = ASSIGNMENT) -> list[str]:
    """A folder for a PrairieLearn course: the question (info.json, question.html, and tests/: the grader
    and its run script), the grading image (image/: Dockerfile, setup.sh, the grader's requirements) and
    a README. out must be missing, empty, or an earlier such release (it is then replaced whole)."""
    question = PRAIRIELEARN_QUESTION
    run = RUN_PRAIRIELEARN.replace("@PYTHON@", PRAIRIELEARN_PYTHON).replace("@SECONDS@", str(PRAIRIELEARN_GRADING))
    html = QUESTION_HTML.replace("@REQUIRED@", ", ".join(SERVER_FILES)).replace("@OPTIONAL@", ", ".join(OPTIONAL_FILES))
    readme = PRAIRIELEARN_README.replace("@TIMEOUT@", str(PRAIRIELEARN_TIMEOUT))
    files: dict[str, bytes | str] = {
        "README.md": readme.replace("@SECONDS@", str(PRAIRIELEARN_GRADING)),
        "image/Dockerfile": DOCKERFILE,
        "image/setup.sh": SETUP_SH,
        "image/requirements-grader.txt": _requirements(GRADER_PACKAGES),
        f"{question}/info.json": json.dumps(prairielearn_info(image), indent=2) + "\n",
        f"{question}/question.html": html,
        f"{question}/tests/run.sh": run,
    }
    files |= _grader(skeletons, f"{question}/tests/")
    staging = _staged(files)
    earlier = (out / question / "tests" / "run.sh").is_file()
    if out.exists() and not earlier and (not out.is_dir() or any(out.iterdir())):
        raise release.ReleaseError(f"{out} holds other files than a PrairieLearn release: nothing written")
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    for name, data in staging.items():
        (partial / name).parent.mkdir(parents=True, exist_ok=True)
        (partial / name).write_bytes(data)
        (partial / name).chmod(0o755 if name.endswith(".sh") else 0o644)
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return sorted(files)


def check_extracted(folder: Path) -> list[str]:
    """The files of an extracted bundle that give a solution away (none, normally)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return [str(p.relative_to(folder)) for p in files if leaked(p.name, p.read_bytes())]
