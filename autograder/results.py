"""What a grading found, in one place: the Result of each check, the totals (the 100, and the optional
part beside it), the tables and feedback lines for people, the rubric, and the writers of the course
platforms' results.json: Gradescope's, used by grade, course and bundles alike, and PrairieLearn's, made
from it (`python -m autograder.results --to-prairielearn`, for its run script)."""

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rich import box
from rich.markup import escape
from rich.table import Table

from autograder import ALL_MODES, OPTIONAL_MODES
from autograder.marks import CATEGORIES


@dataclass
class Result:
    """The outcome of one check against one mode."""

    number: str  # e.g. "1.3": the category, then the check within it (the same for every mode)
    category: str
    title: str
    mode: str
    variant: str  # another parameter of the check, e.g. the start method, or ""
    points: float
    max_points: float
    status: str  # "passed", "failed", or "error" (a fault of the grader: not the student's score)
    feedback: str
    seconds: float = 0.0
    hidden: bool = False
    notes: dict[str, str] = field(default_factory=dict)  # information that is not graded
    node: str = ""  # the pytest node it came from: its place in the grading's order
    cause: str = ""  # a more basic mistake that explains a failure (probes.diagnose), shared by the checks it costs

    @property
    def name(self) -> str:
        return f"{self.check}: {self.mode}"

    @property
    def check(self) -> str:
        """The check's name, the same for every mode."""
        return f"{CATEGORIES[self.category]}: {self.title}" + (f" [{self.variant}]" if self.variant else "")


@dataclass
class Totals:
    """(earned, possible) of the 100, of the optional part beside it, and of each category."""

    score: float
    max_score: float
    optional: tuple[float, float]
    categories: dict[str, tuple[float, float]]


def totals(results: Iterable[Result]) -> Totals:
    categories = {c: (0.0, 0.0) for c in CATEGORIES}
    for r in results:
        earned, possible = categories[r.category]
        categories[r.category] = (earned + r.points, possible + r.max_points)
    categories = {c: t for c, t in categories.items() if t[1]}
    optional = categories.get("optional", (0.0, 0.0))
    graded = [t for c, t in categories.items() if c != "optional"]
    return Totals(sum(e for e, _ in graded), sum(p for _, p in graded), optional, categories)


def from_gradescope(data: dict) -> list[Result]:
    """The Results of a results.json this grader wrote (its tags: category, mode, variant)."""
    found = []
    for test in data.get("tests", []):
        category, mode, *variant = test["tags"]
        title = test["name"].removeprefix(f"{CATEGORIES[category]}: ").removesuffix(f": {mode}")
        found.append(
            Result(
                number=test.get("number", ""),
                category=category,
                title=title.removesuffix(f" [{variant[0]}]") if variant else title,
                mode=mode,
                variant=variant[0] if variant else "",
                points=test["score"],
                max_points=test["max_score"],
                status=test["status"],
                feedback=test["output"],
                hidden=test.get("visibility") == "after_published",
            )
        )
    return found


def number_results(results: list[Result]) -> None:
    """Numbers like "1.3": the category's place in the rubric, then the check's place within it."""
    order = list(CATEGORIES)
    rows: dict[str, list[str]] = {}
    for result in results:
        checks = rows.setdefault(result.category, [])
        if result.check not in checks:
            checks.append(result.check)
        result.number = f"{order.index(result.category) + 1}.{checks.index(result.check) + 1}"


# For people -----------------------------------------------------------------------------------


def tables(grader) -> list[Table | str]:
    """The results for people, at 80 columns: the 100 points, a row per check under its category, a
    column per mode; then the optional part, as a table of its own when it was handed in, else one line."""
    total = totals(grader.results)
    basic = [r for r in grader.results if r.category != "optional"]
    title = f"Concurrency Lab: {total.score:g} / {total.max_score:g} points"
    if grader.hidden_not_run:
        title += f" (and {grader.hidden_not_run:g} in hidden checks)"
    shown: list[Table | str] = [_table(title, basic, by_category=True)]
    optional = [r for r in grader.results if r.category == "optional"]
    if optional:
        earned, possible = total.optional
        shown.append(_table(f"Optional part, beside the 100: {earned:g} / {possible:g} points", optional))
    elif not any(mode in grader.broken for mode in OPTIONAL_MODES) and set(OPTIONAL_MODES) & set(grader.modes):
        shown.append("optional part: not handed in")
    return shown


def _table(title: str, results: list[Result], by_category: bool = False) -> Table:
    modes = [m for m in ALL_MODES if any(r.mode == m for r in results)]
    view = Table(title=title, title_justify="left", box=box.MINIMAL_HEAVY_HEAD, show_edge=False)  # a line a row
    view.add_column("#", justify="right", style="dim", no_wrap=True)
    view.add_column("check", ratio=1)
    for mode in modes:
        view.add_column(mode, justify="right", no_wrap=True)
    rows: dict[tuple[str, str, str], dict[str, Result]] = {}
    for r in results:
        title_cell = r.title + (f" [{r.variant}]" if r.variant else "")
        rows.setdefault((r.category, r.number, title_cell), {})[r.mode] = r
    category = ""
    for (row_category, number, title_cell), by_mode in rows.items():
        if by_category and row_category != category:
            category = row_category
            view.add_row("", f"[bold]{CATEGORIES[category]}[/]", *[""] * len(modes))
        view.add_row(number, escape(title_cell), *[_cell(by_mode.get(mode)) for mode in modes])
    points = [sum(r.points for r in results if r.mode == m) for m in modes]
    view.add_row("", "[bold]points per mode[/]", *[f"[bold]{t:g}[/]" for t in points])
    return view


def _cell(result: Result | None) -> str:
    if result is None:
        return ""
    style = {"passed": "green", "failed": "red", "error": "magenta"}[result.status]
    return f"[{style}]{result.points:g}/{result.max_points:g}[/]"


NOT_WRITTEN = re.compile(r"(\w+)\(\) in (\w+\.py) is not implemented yet")


def _key(number: str) -> tuple[int, ...]:
    return tuple(int(part) for part in number.split(".") if part.isdigit())


def owners(results: list[Result]) -> dict[int, Result]:
    """{index of a failed result: the result that states its cause}: of the failed checks of one mode that share
    a cause, the first in the rubric's order states it, and the others follow from it."""
    first: dict[tuple[str, str], Result] = {}
    found = {}
    for i in sorted(range(len(results)), key=lambda i: _key(results[i].number)):
        r = results[i]
        if r.status != "failed" or not r.cause:
            continue
        owner = first.setdefault((r.mode, r.cause), r)
        if owner is not r:
            found[i] = owner
    return found


def stated(r: Result) -> str:
    """A failed check's feedback, with the cause it states when the feedback does not say it already."""
    return f"{r.feedback}: {r.cause}" if r.cause and r.cause not in r.feedback else r.feedback


def shown(r: Result, owner: Result | None) -> str:
    """What a course platform shows of one check: its feedback; for one that follows from another, which."""
    if owner is None:
        return stated(r)  # a cause is kept for failed checks only
    return f"follows from {owner.number} ({owner.title}): {r.cause}. What this check saw: {r.feedback}"


def gradescope_output_of(results: list[Result]) -> list[str]:
    """What a course platform shows of each check, in the order of results."""
    follows = owners(results)
    return [shown(r, follows.get(i)) for i, r in enumerate(results)]


def feedback(results: list[Result], patterns: dict[str, list[str]] | None = None) -> list[str]:
    """What lost points, grouped by cause. A file whose functions are not written yet: one line, naming them
    (from patterns, where given), for every check it cost. A check that lost points: one line, for every mode
    with the same feedback. Checks that lost points to a cause another check states: one line, pointing at it."""
    unwritten, lost_to = {}, {}
    said: dict[tuple[str, str, str], list[str]] = {}  # (number, check, feedback): modes
    following: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}  # (owner's number, cause, numbers): modes
    follows = owners(results)
    per_mode: dict[tuple[str, str, str], list[str]] = {}
    for i, r in sorted(enumerate(results), key=lambda item: _key(item[1].number)):
        if r.status == "passed":
            continue
        found = NOT_WRITTEN.findall(r.feedback) if r.status == "failed" else []
        for function, file in found:
            unwritten.setdefault(file, set()).add(function)
            lost_to.setdefault(file, set()).add(r.name)
        if found:
            continue
        if i in follows:
            per_mode.setdefault((follows[i].number, r.cause, r.mode), []).append(r.number)
        else:
            said.setdefault((r.number, r.check, stated(r)), []).append(r.mode)
    for (number, cause, mode), numbers in per_mode.items():
        following.setdefault((number, cause, tuple(numbers)), []).append(mode)
    for file, found in (patterns or {}).items():  # blanks the checks could not reach yet, too
        blanks = {p.removeprefix("unwritten:") for p in found if p.startswith("unwritten:")}
        unwritten.setdefault(file, set()).update(blanks)
    lines = []
    for file, functions in sorted(unwritten.items()):
        if not functions:
            continue
        names = sorted(f"{function}()" for function in functions)
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        count = f" ({len(lost_to[file])} checks lost to it)" if file in lost_to else ""
        lines.append(f"{file}: {listed} {'is' if len(names) == 1 else 'are'} not written yet{count}")
    left = dict(following)
    for (number, check, text), modes in said.items():
        lines.append(f"{number} {check}: {', '.join(modes)}: {text}")
        for key, modes_following in following.items():  # under the owner's line, when its modes are there
            if key in left and key[0] == number and set(modes_following) <= set(modes):
                lines.append(_follow_line(key, left.pop(key)))
    return lines + [_follow_line(key, modes) for key, modes in left.items()]


def _follow_line(key: tuple[str, str, tuple[str, ...]], modes: list[str]) -> str:
    owner, _, numbers = key
    verb = "follows" if len(numbers) == 1 else "follow"
    return f"{', '.join(numbers)} {', '.join(modes)}: {verb} from {owner}, the same cause"


def rubric(collected: list[Result]) -> str:
    """The rubric as a Markdown table, from the checks' own marks (the one source of points)."""
    number_results(collected)
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for r in collected:
        name = r.check + (" (hidden: official grading only)" if r.hidden else "")
        rows.setdefault((r.number, name), {})[r.mode] = r.max_points
    modes = [m for m in ALL_MODES if any(r.mode == m for r in collected)]
    lines = ["| # | check | " + " | ".join(modes) + " | points |", "| --- | --- |" + " ---: |" * (len(modes) + 1)]
    for (number, check), points in rows.items():
        cells = [f"{points[m]:g}" if m in points else "" for m in modes]
        lines.append(f"| {number} | {check} | {' | '.join(cells)} | {sum(points.values()):g} |")
    blank = " |" * len(modes)
    total = totals(collected)
    for category, (_, possible) in total.categories.items():
        if category != "optional":
            lines.append(f"| | **{CATEGORIES[category]}** |{blank} **{possible:g}** |")
    lines.append(f"| | **total** |{blank} **{total.max_score:g}** |")
    if total.optional[1]:
        lines.append(f"| | **optional part, beside the total** |{blank} **{total.optional[1]:g}** |")
    return "\n".join(lines) + "\n"


# For course platforms -------------------------------------------------------------------------

NOT_GRADABLE = "not gradable: "  # how a not-gradable result's output begins
HIDDEN_NOTE = "Hidden from the student, as this is not a grade. "  # Gradescope shows it to staff only


def gradescope(grader, seconds: float, interrupted: str = "") -> dict:
    """Gradescope's results.json of a grading that has ended. One that holds a grader fault, or was
    interrupted, is not a grade: it is hidden from the student, whatever its score."""
    total = totals(grader.results)
    output = f"{total.score:g} / {total.max_score:g} points over {len(grader.results)} checks."
    if grader.isolation.warning:
        output += f" Warning: {grader.isolation.warning}."
    output += "".join(f" Note: {line}." for line in grader.advice)
    if total.optional[1]:
        output += f" Optional part, apart from that score: {total.optional[0]:g} / {total.optional[1]:g} points."
    if grader.problems:
        output += " The grader had a fault, so this is not a grade: " + "; ".join(grader.problems)
    if interrupted:
        output += f" Grading was interrupted ({interrupted}): the checks that did not run are missing."
    not_a_grade = bool(grader.problems or interrupted)
    outputs = gradescope_output_of(grader.results)
    return {
        "score": total.score,
        "execution_time": round(seconds, 1),
        "output": (HIDDEN_NOTE if not_a_grade else "") + output,
        "visibility": "hidden" if not_a_grade else "visible",
        "stdout_visibility": "hidden",
        "tests": [
            {
                "name": r.name,
                "number": r.number,
                "score": r.points,
                "max_score": r.max_points,
                "status": "passed" if r.status == "passed" else "failed",
                "output": outputs[i],
                "visibility": "after_published" if r.hidden else "visible",
                "tags": [r.category, r.mode, *([r.variant] if r.variant else [])],
            }
            for i, r in enumerate(grader.results)
        ],
        "leaderboard": [],
    }


def write_gradescope(path: Path, grader, seconds: float, interrupted: str = "") -> None:
    """Gradescope's results.json, written whole (atomically), once grading has ended."""
    write_atomically(path, gradescope(grader, seconds, interrupted))


def not_gradable(reason: str) -> dict:
    """Gradescope's results.json for a submission that cannot be graded: 0, and why (shown to the student)."""
    return {"score": 0, "output": f"{NOT_GRADABLE}{reason}", "tests": [], "visibility": "visible"}


def write_not_gradable(path: Path, reason: str) -> None:
    """results.json for a submission that cannot be graded: 0, and why (course platforms show it)."""
    write_atomically(path, not_gradable(reason))


# PrairieLearn's results.json: a score from 0 to 1 (of the 100 points), or "gradable": false, which
# PrairieLearn records as no grade at all ("invalid, not gradable": no points, no attempt used). Its
# results element adds the tests' points up for its headline, so the optional part's checks carry 0 of 0
# (their points in their message); the hidden checks, whose names and feedback only Gradescope's
# published grades show, are one test.

GRADED, NOT_GRADABLE_EXIT, GRADER_FAULT_EXIT, INTERRUPTED_EXIT = 0, 2, 3, 130  # grade.py's exit statuses


def prairielearn(data: dict, exit_status: int) -> dict:
    """PrairieLearn's results.json from Gradescope's (as this grader wrote it) and the grader's exit
    status (0 graded, 2 not gradable, 3 a grader fault, 130 interrupted): only 0 gives a score."""
    message = str(data.get("output", "")).removeprefix(HIDDEN_NOTE)
    if exit_status == NOT_GRADABLE_EXIT:
        return {"gradable": False, "message": message, "format_errors": [message.removeprefix(NOT_GRADABLE)]}
    found = from_gradescope(data)
    tests = [_prairielearn_test(r) for r in found if not r.hidden]
    hidden = [r for r in found if r.hidden]
    if hidden:
        passed = sum(r.status == "passed" for r in hidden)
        tests.append(
            {
                "name": "Hidden checks",
                "description": "variants of the checks above: other request sizes, split points, paths, more clients",
                "points": sum(r.points for r in hidden),
                "max_points": sum(r.max_points for r in hidden),
                "message": f"{passed} of {len(hidden)} passed (which ones, and why, is not shown)",
                "output": "",
            }
        )
    if exit_status != GRADED:
        why = "grading was stopped before it ended" if exit_status == INTERRUPTED_EXIT else "the grader had a fault"
        message = f"Not a grade, and not counted: {why} (exit status {exit_status}). {message}"
        return {"gradable": False, "message": message, "output": "", "tests": tests}
    total = totals(found)
    score = total.score / total.max_score if total.max_score else 0.0
    return {"gradable": True, "score": round(score, 4), "message": message, "output": "", "tests": tests}


def _prairielearn_test(r: Result) -> dict:
    optional = r.category == "optional"
    beside = f" (optional part, beside the 100: {r.points:g} / {r.max_points:g} points)" if optional else ""
    return {
        "name": f"{r.number} {r.name}",
        "description": CATEGORIES[r.category],
        "points": 0 if optional else r.points,
        "max_points": 0 if optional else r.max_points,
        "message": r.feedback + beside,
        "output": "",
    }


def write_prairielearn(path: Path, grader, seconds: float, interrupted: str = "") -> None:
    """PrairieLearn's results.json, written whole (atomically), once grading has ended."""
    status = INTERRUPTED_EXIT if interrupted else GRADER_FAULT_EXIT if grader.problems else GRADED
    write_atomically(path, prairielearn(gradescope(grader, seconds, interrupted), status))


def write_prairielearn_not_gradable(path: Path, reason: str) -> None:
    """PrairieLearn's results.json for a submission that cannot be graded: gradable false, and why."""
    write_atomically(path, prairielearn(not_gradable(reason), NOT_GRADABLE_EXIT))


def write_atomically(path: Path, results: dict) -> None:
    """Write a results.json whole or not at all: a temporary file beside it, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(results, indent=2))
    partial.replace(path)


def main(argv: list[str] | None = None) -> int:
    """`python -m autograder.results --to-prairielearn IN OUT --exit-status N`: PrairieLearn's
    results.json from Gradescope's, for a run script that keeps the grader's own command line."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m autograder.results", description=main.__doc__)
    parser.add_argument("--to-prairielearn", nargs=2, type=Path, metavar=("IN", "OUT"), required=True)
    parser.add_argument("--exit-status", type=int, required=True, help="the grader's: 0 graded, 2, 3 or 130 not")
    args = parser.parse_args(argv)
    source, out = args.to_prairielearn
    write_atomically(out, prairielearn(json.loads(source.read_text()), args.exit_status))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
