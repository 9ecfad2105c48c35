"""Realistic bugs, one at a time on a copy of the reference, and a copy written as the report wrote its
servers: each must lose points in its own category, with feedback that names the cause, and keep
them elsewhere."""

from dataclasses import dataclass

import pytest
from test_grader import RUN, by_category, grade

from conftest import leftovers, mutant


@dataclass
class Bug:
    """A copy of the reference with one realistic bug, and the category that must lose points for it."""

    name: str
    file: str
    old: str
    new: str
    mode: str
    category: str
    control: str  # a check of another category, which must keep its points

    def __str__(self) -> str:
        return self.name


BUGS = [
    Bug(
        "the parent keeps its copy of the client socket",
        "multiprocess_server.py",
        "        conn.close()  # The parent closes its copy of the client socket (important!)\n",
        "",
        "multiprocess",
        "protocol",
        "restart",
    ),
    Bug(
        "LF line endings",
        "handler.py",
        '("\\r\\n".join(head) + "\\r\\n\\r\\n")',
        '("\\n".join(head) + "\\n\\n")',
        "multithread",
        "protocol",
        "mechanism",
    ),
    Bug(
        "no echo",
        "handler.py",
        '.encode("ascii") + request  #',
        '.encode("ascii") + request[:0]  #',
        "single",
        "protocol",
        "restart",
    ),
    Bug(
        "a single recv(1024)",
        "handler.py",
        "    request = bytearray()\n    while HEAD_END",
        "    return conn.recv(1024)\n    request = bytearray()\n    while HEAD_END",
        "multithread",
        "protocol",
        "mechanism",
    ),
    Bug(
        "never closing the socket",
        "handler.py",
        "    with closed_cleanly(conn), client_errors_logged(addr):\n",
        "    with client_errors_logged(addr):\n",
        "single",
        "protocol",
        "restart",
    ),
    Bug(
        "strict decoding of binary input",
        "handler.py",
        "        log_request(addr, request)\n",
        "        log_request(addr, request.decode().encode())\n",
        "multiprocess",
        "protocol",
        "mechanism",
    ),
    Bug(
        "no guard: a client's reset kills the server",
        "handler.py",
        "    with closed_cleanly(conn), client_errors_logged(addr):\n",
        "    with conn:\n",
        "single",
        "protocol",
        "restart",
    ),
    Bug(
        "threads in the single server",
        "single_server.py",
        "        handle_client(conn, addr)\n",
        "        __import__('threading').Thread(target=handle_client, args=(conn, addr)).start()\n",
        "single",
        "concurrency",
        "echo",
    ),
    Bug(
        "inline handling in the thread server",
        "multithread_server.py",
        '        threading.Thread(target=handle_client, args=(conn, addr), name=f"client {addr}").start()\n',
        "        handle_client(conn, addr)\n",
        "multithread",
        "concurrency",
        "echo",
    ),
    Bug(
        "threads in the process server",
        "multiprocess_server.py",
        "        context.Process(target=handle_client, args=(conn, addr)).start()\n        conn.close()",
        "        __import__('threading').Thread(target=handle_client, args=(conn, addr)).start()\n        # ",
        "multiprocess",
        "concurrency",
        "echo",
    ),
    Bug(
        "children never reaped",
        "multiprocess_server.py",
        "    multiprocessing.active_children()  # joins, and so reaps, the children that have exited\n",
        "    pass\n",
        "multiprocess",
        "hygiene",
        "echo",
    ),
    Bug(
        "no graceful shutdown: daemon threads, never joined",
        "multithread_server.py",
        'name=f"client {addr}").start()\n    for worker in threading.enumerate():',
        'name=f"client {addr}", daemon=True).start()\n    for worker in []:',
        "multithread",
        "hygiene",
        "echo",
    ),
    Bug(
        "no SO_REUSEADDR",
        "handler.py",
        "        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n",
        "",
        "single",
        "hygiene",
        "echo",
    ),
    Bug(
        "binding every interface",
        "handler.py",
        "            self.sock.bind((host, port))\n",
        '            self.sock.bind(("", port))\n',
        "multithread",
        "hygiene",
        "echo",
    ),
]


@pytest.mark.parametrize("bug", BUGS, ids=str)
def test_a_bug_loses_points_in_its_category_and_keeps_them_elsewhere(tmp_path, bug):
    submission = mutant(tmp_path / "sub", bug.file, bug.old, bug.new)
    results, printed, _ = grade(
        submission, tmp_path, "--mode", bug.mode, "--check", bug.category, "--check", bug.control
    )
    tests = by_category(results)
    lost = [t for t in tests[bug.category] if t["score"] < t["max_score"]]
    assert lost, f"{bug.name}: no {bug.category} check lost points"
    assert all(t["output"] != "ok" and len(t["output"]) > 20 for t in lost)
    others = [t for category, ts in tests.items() if category != bug.category for t in ts]
    assert others and all(t["score"] == t["max_score"] for t in others), others
    assert "grader fault" not in printed
    assert leftovers(RUN) == []


def test_feedback_names_the_likely_cause_of_the_parent_keeping_the_socket(tmp_path):
    bug = BUGS[0]
    submission = mutant(tmp_path / "sub", bug.file, bug.old, bug.new)
    results, _, _ = grade(submission, tmp_path, "--mode", "multiprocess", "--check", "closes_after_reply")
    (test,) = results["tests"]
    assert test["score"] == 0
    assert "never saw the connection close" in test["output"]
    assert "does the parent close its copy of the socket after starting the child?" in test["output"]


def test_a_submission_written_as_the_report_wrote_its_servers(tmp_path):
    """LF line endings, no Content-Length, one recv(1024), send() instead of sendall(), the parent
    keeping its copy of the socket: protocol points lost, concurrency points kept."""
    submission = mutant(
        tmp_path / "sub", "multiprocess_server.py", "        conn.close()  # The parent", "        # The parent"
    )
    handler = (submission / "handler.py").read_text()
    start, end = (
        handler.index("    with closed_cleanly(conn), client_errors_logged(addr):\n"),
        handler.index("# ------"),
    )
    report_style = (
        "    with closed_cleanly(conn), client_errors_logged(addr):\n"
        "        data = conn.recv(1024)\n"
        "        if not data:\n"
        "            return\n"
        "        log_request(addr, data)\n"
        '        conn.send(b"HTTP/1.1 200 OK\\nContent-Type: text/html\\n\\n" + data)\n\n\n'
    )
    (submission / "handler.py").write_text(handler[:start] + report_style + handler[end:])
    results, printed, _ = grade(submission, tmp_path, "--check", "protocol", "--check", "concurrency")
    tests = {(t["name"].split(": ")[1], t["tags"][1]): t for t in results["tests"]}
    lost = {key for key, t in tests.items() if t["score"] < t["max_score"]}
    for mode in ("single", "multiprocess", "multithread"):
        assert ("Status line, and CRLF line endings", mode) in lost
        assert ("Headers", mode) in lost or ("Headers: Content-Type, Content-Length, Connection", mode) in lost
        assert ("A 6 KiB request head", mode) in lost
        assert ("The body echoes the request", mode) not in lost  # one deduction for the framing, not two
    assert ("The connection closes right after the reply", "multiprocess") in lost
    assert ("The connection closes right after the reply", "multithread") not in lost
    assert all(t["score"] == t["max_score"] for t in by_category(results)["concurrency"])
    assert "grader fault" not in printed
