"""How many of the mistakes a student can make the grader notices: its mutation score.

    python benchmarks/mutation.py [--only TEXT] [--out FILE]

Mutants are made of every line students write in the reference (the lines between the solution
markers of handler.py and of the three required servers): each line deleted (replaced by `pass`, so
that the file still parses), and a few operators that fit this code (send for sendall, a swapped
condition, a wrong constant). Each mutant that still parses is graded with the public checks
(`grade --public`) in the modes its file serves. A mutant is killed when it loses points, survives
when it keeps full marks, and is equivalent when EQUIVALENT says why no client could tell it from the
reference. The table goes to --out (benchmarks/results/mutation.md by default), with the command, the
machine and the date.
"""

import argparse
import ast
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from provenance import commit, publish  # a module beside this one

KIT = Path(__file__).resolve().parent.parent
SOLUTION = KIT / "solution"
FILES = {
    "handler.py": ("single", "multiprocess", "multithread"),
    "single_server.py": ("single",),
    "multiprocess_server.py": ("multiprocess",),
    "multithread_server.py": ("multithread",),
}
OPERATORS = (  # (name, pattern, replacement text): applied once per line where the pattern occurs
    ("send for sendall", r"\.sendall\(", ".send("),
    ("swapped condition", r"\bif not ", "if "),
    ("swapped condition", r" not in ", " in "),
    ("wrong constant", r"HEAD_END not in", 'b"\\r\\n" not in'),  # the end of the first line, not of the head
    ("wrong constant", r"\"200 OK\"", '"200 Ok"'),
    ("wrong constant", r"text/html", "text/plain"),
)
# (file, the line as written, operator): why no client, and no check, can tell the mutant apart.
EQUIVALENT: dict[tuple[str, str, str], str] = {}


@dataclass
class Mutant:
    file: str
    line: int  # 1-based, in the reference
    text: str  # the line as the reference has it, stripped
    operator: str  # "deleted", or one of OPERATORS' names
    source: str  # the whole mutated file

    @property
    def key(self) -> tuple[str, str, str]:
        return self.file, self.text, self.operator


def student_lines(text: str) -> list[int]:
    """The 0-based numbers of the lines between ### BEGIN SOLUTION and ### END SOLUTION."""
    inside, found = False, []
    for number, line in enumerate(text.splitlines()):
        if "### BEGIN SOLUTION" in line:
            inside = True
        elif "### END SOLUTION" in line:
            inside = False
        elif inside and line.strip() and not line.strip().startswith("#"):
            found.append(number)
    return found


def parses(source: str) -> bool:
    try:
        ast.parse(source)
    except SyntaxError:
        return False
    return True


def mutants() -> list[Mutant]:
    made = []
    for name in FILES:
        text = (SOLUTION / name).read_text()
        lines = text.splitlines(keepends=True)
        for number in student_lines(text):
            line = lines[number]
            indent = line[: len(line) - len(line.lstrip())]
            changed = [("deleted", f"{indent}pass\n")]
            changed += [(op, re.sub(pattern, lambda _, new=new: new, line, count=1)) for op, pattern, new in OPERATORS]
            for operator, new in changed:
                if new == line:
                    continue
                source = "".join([*lines[:number], new, *lines[number + 1 :]])
                if parses(source):
                    made.append(Mutant(name, number + 1, line.strip(), operator, source))
    return made


def grade(mutant: Mutant, folder: Path) -> dict:
    """{points lost, checks that noticed} of one mutant, graded with the public checks."""
    for name in FILES:
        shutil.copyfile(SOLUTION / name, folder / name)
    (folder / mutant.file).write_text(mutant.source)
    out = folder / "results.json"
    modes = [f"--mode={mode}" for mode in FILES[mutant.file]]
    run = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", str(folder), "--public", "--json", str(out), *modes],
        cwd=KIT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    results = json.loads(out.read_text()) if out.exists() else {"tests": [], "output": run.stderr[-300:]}
    lost = [t for t in results["tests"] if t["score"] < t["max_score"]]
    return {
        "lost": sum(t["max_score"] - t["score"] for t in lost),
        "checks": sorted({t["name"].rsplit(":", 1)[0] for t in lost}),
        "fault": "not a grade" in results.get("output", "") or run.returncode not in (0,),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="only mutants whose line holds this text")
    parser.add_argument("--out", type=Path, default=KIT / "benchmarks" / "results" / "mutation.md")
    args = parser.parse_args()
    made = [m for m in mutants() if not args.only or args.only in m.text]
    rows, killed, survived, equivalent = [], 0, [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, mutant in enumerate(made, 1):
            folder = Path(tmp) / f"m{i}"
            folder.mkdir()
            if mutant.key in EQUIVALENT:
                equivalent += 1
                rows.append((mutant, "equivalent", 0.0, EQUIVALENT[mutant.key]))
                continue
            graded = grade(mutant, folder)
            if graded["lost"]:
                killed += 1
                checks = graded["checks"]
                noticed = "; ".join(checks[:3]) + (f" (and {len(checks) - 3} more)" if len(checks) > 3 else "")
                rows.append((mutant, "killed", graded["lost"], noticed))
            else:
                survived.append(mutant)
                rows.append((mutant, "survived", 0.0, "grader fault" if graded["fault"] else ""))
            print(f"{i}/{len(made)} {mutant.file}:{mutant.line} {mutant.operator}: {rows[-1][1]}", flush=True)
    considered = len(made) - equivalent
    score = killed / considered if considered else 1.0
    command = "python benchmarks/mutation.py " + " ".join(sys.argv[1:])
    lines = [
        "# The grader's mutation score",
        "",
        f"`{command.strip()}`, {datetime.date.today()}: {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, the kit at {commit()}. "
        "Written by the benchmark; do not edit by hand.",
        "",
        f"**{killed} of {considered} mutants that are not equivalent are killed ({score:.0%})**; "
        f"{equivalent} equivalent, {len(survived)} survived.",
        "",
        "| file:line | the line | mutation | outcome | points lost | noticed by, or why |",
        "| --- | --- | --- | --- | ---: | --- |",
    ]
    for mutant, outcome, lost, why in rows:
        text = mutant.text.replace("|", "\\|")
        lines.append(
            f"| {mutant.file}:{mutant.line} | `{text}` | {mutant.operator} | {outcome} | {lost:g} | {why or '-'} |"
        )
    publish(args.out, lines)


if __name__ == "__main__":
    main()
