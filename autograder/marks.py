"""The marks of the checks: what a check is worth (the `check` mark, the categories) and what it tells a
student (Deduction, the one exception that means "the submission lost these points"; anything else that
goes wrong in a check is a fault of the grader, and is reported as such, never as a zero)."""

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
    """The submission loses the check's points; the message is the feedback, in a student's terms. cause, when
    known, is a more basic mistake that explains it (probes.diagnose): the checks it costs are listed once,
    under the first of them, instead of each explaining it again."""

    def __init__(self, feedback: str, cause: str = "") -> None:
        super().__init__(feedback)
        self.cause = cause


class GraderStarved(Exception):
    """The grading machine was too busy for the evidence to decide (the grader's own timers fired late):
    a fault of the grading, never a deduction; the message says what was seen."""


def expect(condition: object, feedback: str, cause: str = "") -> None:
    """Deduct the check's points with this feedback (and cause, where the check saw one) unless condition holds."""
    if not condition:
        raise Deduction(feedback, cause)


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
