"""Generate the student skeletons in assignment/ from the reference in solution/.

Each solution region (### BEGIN SOLUTION ... ### END SOLUTION) is replaced by nbgrader's own
ClearSolutions preprocessor, the one `nbgrader generate_assignment` applies to notebooks: the
file's text goes through it as a one-cell notebook. The result is then verified: no marker left,
no line of a solution left, every file parses.
"""

import ast
from pathlib import Path

import nbformat
from nbgrader.preprocessors import ClearHiddenTests, ClearMarkScheme, ClearOutput, ClearSolutions, LockCells

from autograder import SOLUTION

BEGIN, END = "BEGIN SOLUTION", "END SOLUTION"
MARKERS = (BEGIN, "BEGIN HIDDEN TESTS")  # either one in a student's copy gives answers away
PATTERNS = ("*.py", "*.ipynb")  # what release writes, and so owns, in the assignment folder


class ReleaseError(Exception):
    """The skeletons could not be generated, or would give a solution away."""


def strip_solutions(source: str) -> str:
    """source with every solution region replaced by nbgrader's stub (# YOUR CODE HERE, raise NotImplementedError())."""
    cell = nbformat.v4.new_code_cell(source)
    notebook = nbformat.v4.new_notebook(
        cells=[cell], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    try:
        notebook, _ = ClearSolutions(enforce_metadata=False).preprocess(notebook, {})
    except RuntimeError as exc:  # nested regions, or a BEGIN without an END
        raise ReleaseError(str(exc)) from None
    return notebook.cells[0].source


def solution_lines(source: str) -> set[str]:
    """The lines that only a solution region holds (stripped, without blank lines and comments)."""
    inside, outside, in_region = set(), set(), False
    for line in source.splitlines():
        text = line.strip()
        if BEGIN in line or END in line:
            in_region = BEGIN in line
        elif text and not text.startswith("#"):
            (inside if in_region else outside).add(text)
    return inside - outside


def gives_away(name: str, text: str) -> bool:
    """Whether text, a copy of solution/NAME that students may read, gives the solution away: it holds
    a solution or hidden-test marker, or a line that only a solution region of solution/NAME has.
    A file that is not named like a solution file never does (the grader's own files name the markers)."""
    reference = SOLUTION / Path(name).name
    if not reference.is_file():
        return False
    if any(marker in text for marker in MARKERS):
        return True
    only_in_solution = solution_lines(reference.read_text(encoding="utf-8")) if reference.suffix == ".py" else set()
    return bool(only_in_solution & {line.strip() for line in text.splitlines()})


def verify(name: str, source: str, skeleton: str) -> None:
    """Raise ReleaseError unless skeleton is free of markers and solution lines, and parses."""
    for marker in (BEGIN, END):
        if marker in skeleton:
            raise ReleaseError(f"{name}: a '{marker}' marker is left in the skeleton")
    leaked = solution_lines(source) & {line.strip() for line in skeleton.splitlines()}
    if leaked:
        raise ReleaseError(f"{name}: solution code is left in the skeleton: {sorted(leaked)[0]!r}")
    try:
        ast.parse(skeleton, filename=name)
    except SyntaxError as exc:
        raise ReleaseError(f"{name}: the skeleton does not parse: {exc}") from None


def student_notebook(source: str) -> str:
    """The student's copy of an nbgrader notebook: solutions, hidden tests and outputs cleared, by
    nbgrader's own preprocessors (those `nbgrader generate_assignment` runs), then verified."""
    notebook = nbformat.reads(source, as_version=4)
    try:
        for preprocessor in (LockCells(), ClearSolutions(), ClearHiddenTests(), ClearMarkScheme(), ClearOutput()):
            notebook, _ = preprocessor.preprocess(notebook, {})
    except RuntimeError as exc:
        raise ReleaseError(f"report.ipynb: {exc}") from None
    text = nbformat.writes(notebook) + "\n"
    for marker in (BEGIN, END, "BEGIN HIDDEN TESTS", "BEGIN MARK SCHEME"):
        if marker in text:
            raise ReleaseError(f"the notebook still holds a '{marker}' marker")
    return text


def generate(solution: Path) -> dict[str, str]:
    """The student's copy of every .py file and notebook in solution, by file name, verified."""
    skeletons = {}
    for path in sorted(solution.glob("*.py")):
        source = path.read_text(encoding="utf-8")
        if BEGIN not in source:
            raise ReleaseError(f"{path.name}: no solution region: it would be released as it is")
        skeletons[path.name] = strip_solutions(source)
        verify(path.name, source, skeletons[path.name])
    if not skeletons:
        raise ReleaseError(f"no .py file in {solution}")
    for path in sorted(solution.glob("*.ipynb")):
        skeletons[path.name] = student_notebook(path.read_text(encoding="utf-8"))
    return skeletons


def differences(skeletons: dict[str, str], out: Path) -> list[str]:
    """The names of the files in out that differ from skeletons, are missing, or are extra."""
    present = {path.name for pattern in PATTERNS for path in out.glob(pattern)} if out.is_dir() else set()
    changed = [
        name for name in skeletons if name not in present or (out / name).read_text(encoding="utf-8") != skeletons[name]
    ]
    return sorted(changed + sorted(present - skeletons.keys()))


def write(skeletons: dict[str, str], out: Path) -> None:
    """Make out hold exactly the skeletons (other .py files in it are removed)."""
    out.mkdir(parents=True, exist_ok=True)
    for path in [path for pattern in PATTERNS for path in out.glob(pattern)]:
        if path.name not in skeletons:
            path.unlink()
    for name, text in skeletons.items():
        (out / name).write_text(text, encoding="utf-8")
