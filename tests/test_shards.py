"""A class graded beyond one machine: `course grade --shard K/N` grades the servers of a slice of the
students into server-checks/ (the unit of work: one student's grading), and `course record` gathers them
into the gradebook, with the same records as one batch. Run here as two shards side by side."""

import csv
import shutil
import subprocess
import sys
from pathlib import Path

from test_course import NAME, nbgrader, run

from autograder import KIT, SERVER_FILES, SOLUTION

ECHO = ["--mode", "single", "--check", "echo"]


def small_course(folder: Path) -> Path:
    """A course with three students: the reference, the release as handed out, one without handler.py."""
    run(sys.executable, "-m", "autograder", "course", "init", folder, "--assignment", NAME)
    nbgrader(folder, "generate_assignment", NAME)
    for student, source in {"alice": SOLUTION, "bob": folder / "release" / NAME, "carol": SOLUTION}.items():
        submitted = folder / "submitted" / student / NAME
        submitted.mkdir(parents=True)
        for name in [*SERVER_FILES, "report.ipynb"]:
            if not (student == "carol" and name == "handler.py"):
                shutil.copyfile(source / name, submitted / name)
        (submitted / "timestamp.txt").write_text("2026-11-26 10:00:00.000000 UTC")
    return folder


def scores(course: Path) -> dict[str, tuple[str, str, str]]:
    rows = csv.DictReader((course / f"server_scores_{NAME}.csv").read_text().splitlines())
    return {row["student"]: (row["status"], row["score"], row["note"]) for row in rows}


def test_two_shards_side_by_side_then_recorded_give_the_records_of_one_batch(tmp_path):
    sharded = small_course(tmp_path / "sharded")
    whole = tmp_path / "whole"
    shutil.copytree(sharded, whole)
    command = [sys.executable, "-m", "autograder", "course", "grade", str(sharded), NAME, *ECHO]
    shards = [
        subprocess.Popen(
            [*command, "--shard", f"{k}/2"], cwd=KIT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for k in (1, 2)
    ]
    try:
        printed = [shard.communicate(timeout=300) for shard in shards]
    finally:
        for shard in shards:
            shard.kill()  # only if it ran past its time: it has ended otherwise
    assert [shard.returncode for shard in shards] == [0, 0], printed
    graded = [
        {line.split(":")[0] for line in out.splitlines() if line[:1].isalpha() and ": " in line} for out, _ in printed
    ]
    assert graded[0] | graded[1] >= {"alice", "bob", "carol"} and not graded[0] & graded[1] & {"alice", "bob", "carol"}
    assert not (sharded / f"server_scores_{NAME}.csv").exists()  # a shard records nothing: course record does
    status = run(sys.executable, "-m", "autograder", "course", "status", sharded, NAME).stdout
    assert status.count("not recorded yet") == 3, status
    run(sys.executable, "-m", "autograder", "course", "record", sharded, NAME)
    run(sys.executable, "-m", "autograder", "course", "grade", whole, NAME, *ECHO)
    assert scores(sharded) == scores(whole)
    assert scores(whole)["alice"][:2] == ("graded", "1") and scores(whole)["carol"][0] == "not gradable"
    for course in (sharded, whole):
        nbgrader(course, "export")
    assert (sharded / "grades.csv").read_text() == (whole / "grades.csv").read_text()
    again = run(sys.executable, "-m", "autograder", "course", "record", sharded, NAME)
    assert "recorded 0" in again.stdout  # idempotent: nothing new to record
