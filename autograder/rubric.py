"""What a check is worth and what it tells a student: the `check` mark, the categories, and
Deduction, the one exception that means "the submission lost these points" (anything else that
goes wrong in a check is a fault of the grader, and is reported as such, never as a zero)."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

CATEGORIES = {
    "protocol": "Protocol",
    "concurrency": "Concurrency",
    "hygiene": "Resource hygiene",
    "start-methods": "Start methods",
    "load": "Load",
    "optional": "Optional part",  # the thread-pool and event-loop servers: points beside the 100
}

HIDDEN = Path(__file__).with_name("checks") / "hidden"  # official grading only: never in the students' bundle
HIDDEN_POINTS = 3  # of the 100, in HIDDEN (a kit test keeps it equal to their marks)


class Deduction(AssertionError):
    """The submission loses the check's points; the message is the feedback, in a student's terms."""


def expect(condition: object, feedback: str) -> None:
    """Deduct the check's points with this feedback unless condition holds."""
    if not condition:
        raise Deduction(feedback)


def check(
    category: str,
    points: float | dict[str, float],
    modes: tuple[str, ...] | None = None,
    optional: float | None = None,
    hidden: bool = False,
):
    """Mark a test as a graded check.

    points: for every mode, or by parameter value (a mode, a start method); modes: the server modes
    it runs against (the three basic ones by default); optional: also run it against the optional
    modes, for this many points each, in the optional part; hidden: run at grading time, left out
    of the students' self-check.
    """
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}")
    return pytest.mark.check(category=category, points=points, modes=modes, optional=optional, hidden=hidden)


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

    @property
    def name(self) -> str:
        return f"{self.check}: {self.mode}"

    @property
    def check(self) -> str:
        """The check's name, the same for every mode."""
        return f"{CATEGORIES[self.category]}: {self.title}" + (f" [{self.variant}]" if self.variant else "")


def write_atomically(path: Path, results: dict) -> None:
    """Write a results.json whole or not at all: a temporary file beside it, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(results, indent=2))
    partial.replace(path)
