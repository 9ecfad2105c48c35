"""Concurrency Lab's grader and tools: release the skeletons, grade submissions, compare the modes."""

from pathlib import Path

KIT = Path(__file__).resolve().parent.parent  # the kit's top folder
SOLUTION = KIT / "solution"
ASSIGNMENT = KIT / "assignment"
SERVER_FILES = ("handler.py", "single_server.py", "multiprocess_server.py", "multithread_server.py")
MODES = ("single", "multiprocess", "multithread")
OPTIONAL_MODES = ("threadpool", "eventloop")  # an optional part, graded beside the 100 points
ALL_MODES = MODES + OPTIONAL_MODES
OPTIONAL_FILES = tuple(f"{mode}_server.py" for mode in OPTIONAL_MODES)
