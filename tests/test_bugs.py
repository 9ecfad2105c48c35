"""Realistic bugs, one at a time on a copy of the reference, and a copy written as the report wrote its
servers: each must lose the points of the one check it names, with feedback that names the cause, and
keep those of a control check."""

import re
from dataclasses import dataclass

import pytest
from test_grader import RUN, grade

from autograder import KIT, SOLUTION

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
        control="check_mechanism",
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
        absent="let in-flight clients finish",
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
        "does the parent close its copy of the socket after starting the child?",
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
        "the code after the accept loop must work when no client ever came",
    ),
    Bug(
        "multiprocessing.Process instead of the context's",
        "multiprocess_server.py",
        PROCESS_LOOP,
        "        multiprocessing.Process(target=handle_client, args=(conn, addr)).start()\n",
        "multiprocess",
        "check_start_method",
        "start each child from multiprocessing.get_context(start_method), not multiprocessing.Process",
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
        "is each client handed to a new thread before the server goes back to accept()?",
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
        "the server had 1 thread: expected the main thread plus one threading.Thread per client: the server "
        "served a client itself, in its own thread, and started no thread for it: run() runs in the caller's "
        "thread; start() starts a new one",
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
        "let in-flight clients finish",
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
        "bind to the --host address only",
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
        "never saw the connection close within 1 s",
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
    results, printed, _ = grade(submission, tmp_path, "--mode", bug.mode, "--check", bug.check, "--check", bug.control)
    mine = [t for t in results["tests"] if title(bug.check) in t["name"]]
    others = [t for t in results["tests"] if t not in mine]
    assert mine and others, results["tests"]
    lost = [t for t in mine if t["score"] < t["max_score"]]
    assert any(bug.feedback in t["output"] for t in lost), [t["output"] for t in mine]
    assert not bug.absent or all(bug.absent not in t["output"] for t in lost), [t["output"] for t in lost]
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


REPORT_HANDLER = (
    "    with closed_cleanly(conn), client_errors_logged(addr):\n"
    "        data = conn.recv(1024)\n"
    "        if not data:\n"
    "            return\n"
    "        log_request(addr, data)\n"
    '        conn.send(b"HTTP/1.1 200 OK\\nContent-Type: text/html\\n\\n" + data)\n\n\n'
)
REPORT_DISPATCH = (
    "    try:\n"
    "        while (client := listener.accept()) is not None:\n"
    "            conn, addr = client\n"
    "            p = multiprocessing.Process(target=handle_client, args=(conn, addr))\n"
    "            p.start()\n"
    "    except:  # noqa: E722\n"
    "        pass\n"
    "    p.join()\n\n\n"
)


def report_style(folder):
    """A copy of the reference whose handler and process server are written as the report wrote them."""
    given = "    with closed_cleanly(conn), client_errors_logged(addr):\n"
    submission = mutant(folder, "handler.py", given, given)
    handler = (submission / "handler.py").read_text()
    start, end = handler.index(given), handler.index("# ------")
    (submission / "handler.py").write_text(handler[:start] + REPORT_HANDLER + handler[end:])
    server = (SOLUTION / "multiprocess_server.py").read_text()
    start, end = server.index("    while (client := listener.accept())"), server.index("def reap_children")
    (submission / "multiprocess_server.py").write_text(server[:start] + REPORT_DISPATCH + server[end:])
    return submission


def lost_checks(results: dict) -> set[str]:
    return {t["name"].split(": ")[1] for t in results["tests"] if t["score"] < t["max_score"]}


def test_the_reports_handler_loses_the_checks_of_its_mistakes(tmp_path):
    """LF line endings, no Content-Length, one recv(1024), send() instead of sendall(): each loses its
    own check, and the echo is one deduction for the framing, not two."""
    results, printed, _ = grade(report_style(tmp_path / "sub"), tmp_path, "--mode", "single", "--check", "protocol")
    lost = lost_checks(results)
    assert {"Status line, and CRLF line endings", "Headers", "A 6 KiB request head"} <= lost
    assert "A 60 KiB reply to a client that reads late" in lost
    assert "The body echoes the request" not in lost
    assert "grader fault" not in printed


def test_the_reports_process_server_loses_the_checks_of_its_mistakes(tmp_path):
    """The parent keeping its copy of the socket, a bare except and a join of the last child only: each
    loses its own check; the concurrency of the server is kept. (Its multiprocessing.Process is a bug
    above: graded here, its replies without Content-Length make each start method wait for the close.)"""
    checks = ["closes_after_reply", "concurrency", "check_graceful_shutdown"]
    options = ["--mode", "multiprocess", *[f"--check={check}" for check in checks]]
    results, printed, _ = grade(report_style(tmp_path / "sub"), tmp_path, *options)
    lost = lost_checks(results)
    assert {"The connection closes right after the reply", "SIGTERM, SIGINT"} <= lost
    concurrency = [t for t in results["tests"] if t["tags"][0] == "concurrency"]
    assert concurrency and all(t["score"] == t["max_score"] for t in concurrency)
    assert "grader fault" not in printed


ALTERNATES = {
    "threads joined from threading.enumerate()": (
        "multithread_server.py",
        "    for thread in threads:\n        thread.join()\n",
        "    for thread in threading.enumerate():\n        if thread is not threading.current_thread():\n"
        "            thread.join()\n",
    ),
    "children kept in a list and joined one by one (the latest Process object kept)": (
        "multiprocess_server.py",
        PROCESS_LOOP,
        "        child = context.Process(target=handle_client, args=(conn, addr))\n        child.start()\n"
        "        children = [c for c in getattr(serve, 'children', []) if c.is_alive()] + [child]\n"
        "        serve.children = children\n",
    ),
}


@pytest.mark.parametrize("name", ALTERNATES)
def test_a_correct_server_written_differently_keeps_full_marks(tmp_path, name):
    file, old, new = ALTERNATES[name]
    submission = mutant(tmp_path / "sub", file, old, new)
    mode = file.removesuffix("_server.py")
    results, printed, _ = grade(submission, tmp_path, "--mode", mode)
    assert results["score"] == sum(t["max_score"] for t in results["tests"]), [
        t for t in results["tests"] if t["score"] < t["max_score"]
    ]
    assert "grader fault" not in printed


@pytest.mark.parametrize(
    ("file", "old", "new", "line"),
    [
        (
            "multiprocess_server.py",
            PROCESS_LOOP,
            "        import os\n\n        if os.fork() == 0:\n"
            "            handle_client(conn, addr)\n            os._exit(0)\n",
            "multiprocess_server.py calls os.fork(): this assignment asks for multiprocessing",
        ),
        (
            "multithread_server.py",
            "import threading\n",
            "import socketserver  # noqa: F401\nimport threading\n",
            "multithread_server.py uses socketserver: this assignment asks for threading",
        ),
    ],
)
def test_a_server_built_on_another_tool_is_told_so_in_one_line(tmp_path, file, old, new, line):
    submission = mutant(tmp_path / "sub", file, old, new)
    mode = file.removesuffix("_server.py")
    results, printed, _ = grade(submission, tmp_path, "--mode", mode, "--check", "check_echo")
    assert printed.count(line) == 1, printed
    assert line in results["output"]
