"""The feedback list, grouped by cause (results.feedback), on Results made by hand: deterministic and fast."""

from autograder import SOLUTION
from autograder.harness import Server
from autograder.plugin import _explain
from autograder.results import Result, feedback, gradescope_output_of


def lost(number: str, mode: str, text: str, cause: str = "", category: str = "concurrency") -> Result:
    return Result(number, category, f"check {number}", mode, "", 0.0, 1.0, "failed", text, cause=cause)


def test_a_cause_is_stated_by_its_first_check_and_the_others_point_at_it():
    cause = "clients are served one at a time"
    results = [
        lost("3.2", "multithread", "took 1 of 3", cause, "hygiene"),
        lost("2.1", "multithread", f"no reply: {cause}", cause),
        lost("2.2", "multithread", "1 thread", cause),
        lost("1.3", "single", "no echo", category="protocol"),
    ]
    lines = feedback(results)
    assert lines == [
        "1.3 Protocol: check 1.3: single: no echo",
        f"2.1 Concurrency: check 2.1: multithread: no reply: {cause}",
        "2.2, 3.2 multithread: follow from 2.1, the same cause",
    ]
    shown = gradescope_output_of(results)
    assert shown[0] == f"follows from 2.1 (check 2.1): {cause}. What this check saw: took 1 of 3"


def test_without_its_owner_the_first_follower_states_the_cause_and_modes_with_one_text_share_a_line():
    cause = "a plain GET request got 400 Bad Request"
    results = [lost("2.2", mode, "no worker", cause) for mode in ("multiprocess", "multithread")]
    results.append(lost("3.1", "multithread", "400", cause, "hygiene"))
    assert feedback(results) == [
        f"2.2 Concurrency: check 2.2: multiprocess, multithread: no worker: {cause}",
        "3.1 multithread: follows from 2.2, the same cause",
    ]


def test_the_feedback_never_quotes_the_reference_run_beside_as_a_baseline(tmp_path):
    """The load check runs the kit's reference beside a slow submission: what the reference logged is not
    the student's to read."""
    reference = Server(SOLUTION / "multithread_server.py", [], tmp_path)
    theirs = Server(tmp_path / "sub" / "multithread_server.py", [], tmp_path)
    for server in (reference, theirs):
        server.stdout_path.write_text(f"[Client x Error] from {server.script.parent.name}\n")
    assert _explain([reference, theirs]) == " [multithread_server.py logged: [Client x Error] from sub]"
