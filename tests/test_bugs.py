"""Realistic bugs, one at a time on a copy of the reference, and a copy written as the report wrote its
servers: each must lose the points of the one check it names, with feedback that names the cause, and
keep those of a control check."""

import re
from dataclasses import dataclass

import pytest
from test_grader import RUN, grade

from autograder import KIT

from conftest import leftovers, mutant

PROCESS_LOOP = "        context.Process(target=handle_client, args=(conn, addr)).start()\n"
THREAD_START = '        thread = threading.Thread(target=handle_client, args=(conn, addr), name=f"client {addr}")\n'


@dataclass
class Bug:
    """A copy of the reference with one realistic bug; the check (its function name) that must lose points
    for it, what its feedback must say, and a control check that must keep its points."""

    name: str
    file: str
    old: str
    new: str
    mode: str
    check: str
    feedback: str
    control: str = "check_echo"
    absent: str = ""  # what the feedback must not say (a misleading hint)

    def __str__(self) -> str:
        return self.name


BUGS = [
    Bug(
        "bare \\n line endings",
        "handler.py",
        '("\\r\\n".join(head) + "\\r\\n\\r\\n")',
        '("\\n".join(head) + "\\n\\n")',
        "multithread",
        "check_status_line_and_crlf",
        "the head's lines end with \\n only: HTTP wants \\r\\n (CRLF)",
        control="check_whole_reply_to_slow_reader",  # the line endings are 1.1's alone: 1.7 no longer blames send()
    ),
    Bug(
        "one recv(1024)",
        "handler.py",
        "    request = bytearray()\n    while HEAD_END",
        "    return conn.recv(1024)\n    request = bytearray()\n    while HEAD_END",
        "multithread",
        "check_large_head",
        "one recv(1024) reads only its first part",
        control="check_mechanism",
    ),
    Bug(
        "one recv(1024), met at shutdown",
        "handler.py",
        "    request = bytearray()\n    while HEAD_END",
        "    return conn.recv(1024)\n    request = bytearray()\n    while HEAD_END",
        "multiprocess",
        "check_graceful_shutdown",
        "read_request() must keep reading until the blank line",
        absent="must still get its whole reply",
    ),
    Bug(
        "one recv(1024), met by the slow reader",
        "handler.py",
        "    request = bytearray()\n    while HEAD_END",
        "    return conn.recv(1024)\n    request = bytearray()\n    while HEAD_END",
        "single",
        "check_whole_reply_to_slow_reader",
        "the server read only part of the request",
        absent="send() writes only",
    ),
    Bug(
        "a thread joined right after its start, met at shutdown",
        "multithread_server.py",
        "        thread.start()\n",
        "        thread.start()\n        thread.join()\n",
        "multithread",
        "check_graceful_shutdown",
        "clients are served one at a time: while a thread served one client, the server accepted no other",
        absent="must still get its whole reply",  # the opposite of the cause
    ),
    Bug(
        "children reaped with os.waitpid() behind multiprocessing's back",
        "multiprocess_server.py",
        "    multiprocessing.active_children()  # joins, and so reaps, the children that have exited\n",
        "    import os\n\n    while True:\n        try:\n            if os.waitpid(-1, os.WNOHANG)[0] == 0:\n"
        "                return\n        except ChildProcessError:\n            return\n",
        "multiprocess",
        "check_burst_leaves_nothing",
        "reaped with os.waitpid() behind multiprocessing's back",
        absent="they are sockets",
    ),
    Bug(
        "send() instead of sendall()",
        "handler.py",
        "conn.sendall(build_reply(request))",
        "conn.send(build_reply(request))",
        "single",
        "check_whole_reply_to_slow_reader",
        "send() writes only what fits in the socket's buffer",
    ),
    Bug(
        "the parent keeps its copy of the client socket",
        "multiprocess_server.py",
        "        conn.close()  # The parent closes its copy of the client socket (important!)\n",
        "",
        "multiprocess",
        "check_connection_closes_after_reply",
        "the server's own process still holds the client's socket after the reply: the parent's copy of it",
    ),
    Bug(
        "a bare except that joins only the last worker",
        "multiprocess_server.py",
        PROCESS_LOOP + "        conn.close()  # The parent closes its copy of the client socket (important!)\n"
        "        ### END SOLUTION\n    ### BEGIN SOLUTION\n    for child in multiprocessing.active_children():\n"
        "        child.join()\n",
        "        child = context.Process(target=handle_client, args=(conn, addr))\n        child.start()\n"
        "        conn.close()\n        ### END SOLUTION\n    ### BEGIN SOLUTION\n    try:\n        pass\n"
        "    except:  # noqa: E722\n        pass\n    child.join()\n",
        "multiprocess",
        "check_graceful_shutdown",
        "serve() returns only once every client it took has been served",  # run() ends the process then
    ),
    Bug(
        "multiprocessing.Process instead of the context's",
        "multiprocess_server.py",
        PROCESS_LOOP,
        "        multiprocessing.Process(target=handle_client, args=(conn, addr)).start()\n",
        "multiprocess",
        "check_start_method",
        "the children must come from the context of the method asked for",
    ),
    Bug(
        "handle_client in the parent of the process server",
        "multiprocess_server.py",
        PROCESS_LOOP,
        "        handle_client(conn, addr)\n",
        "multiprocess",
        "check_start_method",
        "a second client got no reply at all",
        absent="__main__",
    ),
    Bug(
        "handle_client in the thread server's loop",
        "multithread_server.py",
        THREAD_START + "        thread.start()\n        threads.append(thread)\n",
        "        handle_client(conn, addr)\n",
        "multithread",
        "check_held_client",
        "the server served a client itself, in its own thread, and started no thread for it",
    ),
    Bug(
        "start() then join()",
        "multithread_server.py",
        "        thread.start()\n",
        "        thread.start()\n        thread.join()\n",
        "multithread",
        "check_held_client",
        "clients are served one at a time: while a thread served one client, the server accepted no other",
        absent="is each client handed to a new thread",
    ),
    Bug(
        "target=handle_client(conn, addr)",
        "multithread_server.py",
        THREAD_START,
        "        thread = threading.Thread(target=handle_client(conn, addr))\n",
        "multithread",
        "check_mechanism",
        "a function was called instead of passed as target",
    ),
    Bug(
        "run() instead of start()",
        "multithread_server.py",
        "        thread.start()\n",
        "        thread.run()\n",
        "multithread",
        "check_mechanism",
        "the server had 1 thread, not 3 (the main thread and one per client): the server served a client itself, "
        "in its own thread, and started no thread for it: run() runs in the caller's thread; start() starts a new one",
    ),
    Bug(
        "threads in the single server",
        "single_server.py",
        "        handle_client(conn, addr)\n",
        "        __import__('threading').Thread(target=handle_client, args=(conn, addr)).start()\n",
        "single",
        "check_held_client",
        "it should serve one client at a time, in the main thread, with no thread or process",
    ),
    Bug(
        "threads in the process server",
        "multiprocess_server.py",
        PROCESS_LOOP + "        conn.close()",
        "        __import__('threading').Thread(target=handle_client, args=(conn, addr)).start()\n        # ",
        "multiprocess",
        "check_mechanism",
        "the multiprocess server serves clients in threads, not child processes",
    ),
    Bug(
        "children never reaped",
        "multiprocess_server.py",
        "    multiprocessing.active_children()  # joins, and so reaps, the children that have exited\n",
        "    pass\n",
        "multiprocess",
        "check_burst_leaves_nothing",
        "finished children were never reaped (zombies)",
    ),
    Bug(
        "no graceful shutdown: daemon threads, never joined",
        "multithread_server.py",
        'name=f"client {addr}")\n',
        'name=f"client {addr}", daemon=True)\n        threads.clear()\n',
        "multithread",
        "check_graceful_shutdown",
        "a client in flight when the signal comes must still get its whole reply",
    ),
    Bug(
        "no SO_REUSEADDR",
        "handler.py",
        "        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n",
        "",
        "single",
        "check_restart_same_port",
        "Address already in use",
    ),
    Bug(
        "binding every interface",
        "handler.py",
        "            self.sock.bind((host, port))\n",
        '            self.sock.bind(("", port))\n',
        "multithread",
        "check_listens_only_on_given_host",
        "a server listens on the --host address only",
    ),
    Bug(
        "no echo",
        "handler.py",
        '.encode("ascii") + request  #',
        '.encode("ascii") + request[:0]  #',
        "single",
        "check_echo",
        "the body should be the request itself",
        control="check_restart_same_port",
    ),
    Bug(
        "never closing the socket",
        "handler.py",
        "    with closed_cleanly(conn), client_errors_logged(addr):\n",
        "    with client_errors_logged(addr):\n",
        "single",
        "check_connection_closes_after_reply",
        "never saw the connection close within 3 s",
    ),
    Bug(
        "no guard: a client's reset kills the server",
        "handler.py",
        "    with closed_cleanly(conn), client_errors_logged(addr):\n",
        "    with conn:\n",
        "single",
        "check_survives_bad_clients",
        "the server died after a client reset its connection",
    ),
    Bug(
        "only GET gets 200",
        "handler.py",
        'status = "200 OK" if is_request_line(request_line(request)) else',
        'status = "200 OK" if request.startswith(b"GET ") and is_request_line(request_line(request)) else',
        "multithread",
        "check_any_method",
        "any method gets 200 OK, not only GET",
        control="check_bad_request",
    ),
    Bug(
        "the end of the head looked for in the last piece only",
        "handler.py",
        "    while HEAD_END not in request and len(request) < MAX_REQUEST:\n",
        "    chunk = b''\n    while HEAD_END not in chunk and len(request) < MAX_REQUEST:\n",
        "single",
        "check_blank_line_split",
        "the end of the head must be looked for in all the bytes read so far, not in the last piece",
        control="check_request_in_pieces",
    ),
    Bug(
        "no idle timeout",
        "handler.py",
        "        conn.settimeout(IDLE_TIMEOUT)\n",
        "",
        "multithread",
        "check_silent_client_let_go",
        "a client that stays silent must be let go after the idle timeout",
    ),
    Bug(
        "the whole request judged as a request line",
        "handler.py",
        'status = "200 OK" if is_request_line(request_line(request)) else',
        'status = "200 OK" if is_request_line(request) else',
        "multiprocess",
        "check_status_line_and_crlf",
        "a plain GET request got 400 Bad Request: the server judges a well-formed request line malformed",
        control="check_request_in_pieces",
    ),
    Bug(
        "a socket left open per client",
        "handler.py",
        "def handle_client(conn: socket.socket, addr: Address) -> None:\n",
        "LEAKED = []\n\n\ndef handle_client(conn: socket.socket, addr: Address) -> None:\n"
        "    LEAKED.append(conn.dup())\n",
        "multithread",
        "check_burst_leaves_nothing",
        "they are sockets (",
        absent="os.waitpid",
    ),
    Bug(
        "no __main__ guard",
        "multiprocess_server.py",
        'if __name__ == "__main__":\n',
        "if True:\n",
        "multiprocess",
        "check_start_method",
        "imports your module, and it started the server again: the start-up must run only when the module is run",
    ),
]


def title(check: str) -> str:
    """The title a check's results carry: the first line of its docstring."""
    for module in (KIT / "autograder" / "checks").rglob("check_*.py"):
        found = re.search(rf'def {check}\(.*?\):\n    """(.+?)"""', module.read_text(), re.S)
        if found:
            return found[1].splitlines()[0]
    raise LookupError(check)


@pytest.mark.parametrize("bug", BUGS, ids=str)
def test_a_bug_loses_the_points_of_its_check_and_keeps_the_others(tmp_path, bug):
    submission = mutant(tmp_path / "sub", bug.file, bug.old, bug.new)
    options = [
        "--mode",
        bug.mode,
        "--check",
        bug.check,
        "--check",
        bug.control,
        "--jobs",
        "1",
    ]  # two checks: no workers
    results, printed, _ = grade(submission, tmp_path, *options)
    mine = [t for t in results["tests"] if title(bug.check) in t["name"]]
    others = [t for t in results["tests"] if t not in mine]
    assert mine and others, results["tests"]
    lost = [t for t in mine if t["score"] < t["max_score"]]
    assert any(bug.feedback in t["output"] for t in lost), [t["output"] for t in mine]
    assert not bug.absent or all(bug.absent not in t["output"] for t in lost), [t["output"] for t in lost]
    wrong_cause = "clients are served one at a time"  # a cause diagnose() names only where it is the bug
    assert wrong_cause in bug.feedback or all(wrong_cause not in t["output"] for t in lost), [t["output"] for t in lost]
    assert all(t["score"] == t["max_score"] for t in others), others
    assert "grader fault" not in printed
    assert leftovers(RUN) == []


QUOTE = re.compile(r"^> \*\*[^*]+:\*\* `(.+)`$", re.M)  # "The grader says:", "채점기 메시지:"


@pytest.mark.parametrize("handout", ["handout.md", "handout.ko.md"])
def test_each_quote_of_the_handout_is_feedback_a_bug_above_gets(handout):
    quotes = QUOTE.findall((KIT / handout).read_text())
    assert len(quotes) >= 8
    for quote in quotes:
        assert any(bug.feedback == quote for bug in BUGS), f"{handout} quotes {quote!r}, which no bug above asserts"


def test_one_mistake_is_stated_once_and_the_checks_it_costs_point_at_it(tmp_path):
    """target=handle_client(conn, addr) costs 2.1, 2.2, 3.2 and the start-method checks: the cause is stated
    under 2.1, once, and the others follow from it, in one line (results.json says so check by check)."""
    submission = mutant(
        tmp_path / "sub",
        "multiprocess_server.py",
        PROCESS_LOOP,
        PROCESS_LOOP.replace("handle_client, args=(conn, addr)", "handle_client(conn, addr)"),
    )
    checks = ["check_held_client", "check_mechanism", "check_graceful_shutdown", "check_start_method", "check_echo"]
    options = ["--mode", "multiprocess", *(f"--check={check}" for check in checks)]
    results, printed, _ = grade(submission, tmp_path, *options)
    printed = " ".join(printed.split())
    lost = {t["number"]: t["output"] for t in results["tests"] if t["score"] < t["max_score"]}
    assert set(lost) == {"2.1", "2.2", "3.2", "4.1", "4.2", "4.3"}, lost
    cause = "a function was called instead of passed as target"
    assert printed.count(cause) == 1 and "- 2.2, 3.2, 4.1, 4.2, 4.3 multiprocess: follow from 2.1" in printed
    assert all(lost[n].startswith("follows from 2.1 (Who waits for a silent client)") for n in lost if n != "2.1")
    assert all(cause in output for output in lost.values())  # each check's own page names it too
    assert "must still get its whole reply" not in printed and "__main__" not in printed  # no wrong cause
    assert "grader fault" not in printed and leftovers(RUN) == []


def test_the_same_feedback_in_every_mode_is_one_line(tmp_path):
    submission = mutant(
        tmp_path / "sub",
        "handler.py",
        '"200 OK" if is_request_line(request_line(request))',
        '"200 OK" if is_request_line(request)',
    )
    results, printed, _ = grade(
        submission, tmp_path, "--check=check_status_line_and_crlf", "--check=check_echo", "--check=check_held_client"
    )
    printed = " ".join(printed.split())
    assert printed.count("the server judges a well-formed request line malformed") == 1, printed
    assert "Status line and CRLF endings: single, multiprocess, multithread: the reply should begin" in printed
    assert "- 2.1 single, multiprocess, multithread: follows from 1.1, the same cause" in printed
    assert {t["number"] for t in results["tests"] if t["score"] < t["max_score"]} == {"1.1", "2.1"}
