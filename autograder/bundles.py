"""What leaves the instructor's hands: the students' bundle and the Gradescope autograder, as zips.

Neither ever holds solution/: each bundle is checked for solution code before it is written.
"""

import zipfile
from pathlib import Path

from autograder import ASSIGNMENT, KIT, release
from autograder.marks import HIDDEN

# the grader's own requirements (no nbgrader, no matplotlib): they install on Python 3.10 too
GRADER_PACKAGES = ("locust", "pytest", "pytest-timeout", "pytest-xdist", "psutil", "rich", "requests")

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder image (Ubuntu, as root).
set -euo pipefail
apt-get update -qq
apt-get install -y -qq python3 python3-venv python3-pip bubblewrap
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install --quiet -r /autograder/source/requirements-grader.txt
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
handler=$(find "$root/submission" -name handler.py -not -path '*/__MACOSX/*' | head -n 1)
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
  reason=$(tail -n 1 "$private/stderr.txt" | tr -d '"\\' | cut -c 1-500)
  printf '{"score": 0, "visibility": "hidden", "tests": [], "output": "%s"}\n' \
    "The grader failed (exit status $status), so this is not a grade: $reason" > "$results"
fi
exit 0
"""


def _grader_files(hidden: bool = True) -> list[Path]:
    """The grader's files; without hidden, the hidden checks left out (the students' bundle)."""
    package = KIT / "autograder"
    files = [p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return sorted(p for p in files if hidden or not p.is_relative_to(HIDDEN))


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


def _write(out: Path, files: dict[str, bytes | str], executable: tuple[str, ...] = (), students: bool = False) -> None:
    staging = {name: data.encode() if isinstance(data, str) else data for name, data in files.items()}
    hidden = _hidden_lines() if students else set()
    leaks = [name for name, data in staging.items() if leaked(name, data) or hidden_leaked(data, hidden)]
    if leaks:
        raise release.ReleaseError(f"solution code in {', '.join(leaks)}: no bundle written")
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in sorted(staging.items()):
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if name in executable else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(info, data)


def student_bundle(out: Path) -> list[str]:
    """The skeletons, the notebook, the locustfile, the handouts, the requirements and the grader."""
    files: dict[str, bytes | str] = {}
    for path in sorted(ASSIGNMENT.iterdir()):
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


def gradescope_bundle(out: Path) -> list[str]:
    """setup.sh and run_autograder at the root, the grader and the locustfile in source/ beside them."""
    files: dict[str, bytes | str] = {"setup.sh": SETUP_SH, "run_autograder": RUN_AUTOGRADER}
    files["requirements-grader.txt"] = _requirements(GRADER_PACKAGES)
    files["locustfile.py"] = (KIT / "locustfile.py").read_bytes()
    for path in _grader_files():
        files[str(path.relative_to(KIT))] = path.read_bytes()
    _write(out, files, executable=("setup.sh", "run_autograder"))
    return sorted(files)


def check_extracted(folder: Path) -> list[str]:
    """The files of an extracted bundle that give a solution away (none, normally)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return [str(p.relative_to(folder)) for p in files if leaked(p.name, p.read_bytes())]
