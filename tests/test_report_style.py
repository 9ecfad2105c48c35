"""The report's own servers, and correct servers written differently: the report's handler and process
server each lose the checks of their mistakes and keep the rest; a correct server written in another way
keeps full marks; a server built on another tool is told so in one line."""

import pytest
from test_bugs import PROCESS_LOOP
from test_grader import grade

from autograder import SOLUTION

from conftest import mutant

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
    assert {"Status line and CRLF endings", "Headers", "A 6 KiB request head"} <= lost
    assert "60 KiB to a client reading late" in lost
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
    assert {"Closes right after the reply", "SIGTERM/SIGINT"} <= lost
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
    "the head read a byte at a time, and the reply sent as its head then its body": (
        "handler.py",
        "        conn.sendall(build_reply(request))\n",
        '        reply = build_reply(request)\n        cut = reply.index(b"\\r\\n\\r\\n") + 4\n'
        "        conn.sendall(reply[:cut])\n        conn.sendall(reply[cut:])\n",
    ),
}
HANDLER_ALTERNATE = (  # a second change of handler.py, made beside the one above
    "    request = bytearray()\n    while HEAD_END not in request and len(request) < MAX_REQUEST:\n"
    "        chunk = conn.recv(MAX_REQUEST - len(request))\n",
    "    request = bytearray()\n    while not request.endswith(HEAD_END) and len(request) < MAX_REQUEST:\n"
    "        chunk = conn.recv(1)\n",
)


def test_correct_servers_written_differently_keep_full_marks(tmp_path):
    """Every alternate at once (each in a file of its own), graded in the modes they touch."""
    first, *others = ALTERNATES.values()
    submission = mutant(tmp_path / "sub", *first)
    for file, old, new in others:
        text = (submission / file).read_text()
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {file}"
        (submission / file).write_text(text.replace(old, new))
    text = (submission / "handler.py").read_text()
    assert text.count(HANDLER_ALTERNATE[0]) == 1
    (submission / "handler.py").write_text(text.replace(*HANDLER_ALTERNATE))
    served = {file.removesuffix("_server.py") for file, _, _ in ALTERNATES.values()} - {"handler.py"}
    modes = [arg for mode in sorted(served | {"single"}) for arg in ("--mode", mode)]
    results, printed, _ = grade(submission, tmp_path, *modes)
    lost = [(t["name"], t["output"]) for t in results["tests"] if t["score"] < t["max_score"]]
    assert lost == [] and results["score"] == sum(t["max_score"] for t in results["tests"]) > 0
    assert {t["tags"][1] for t in results["tests"]} == set(modes[1::2])
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
