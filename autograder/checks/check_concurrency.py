"""Concurrency, proved by witnesses rather than timing: clients that connect and send nothing.
24 points."""

from autograder.checks.probes import accepted, check, eventually, plural, seen, served
from autograder.client import connect, exchange, get, read_until_close
from autograder.marks import expect

WORKER = {"multiprocess": "child process", "multithread": "thread"}
SERVED_IN_PARENT = {
    "target called": "a function was called instead of passed as target: the call ran right there, in the "
    "server, and the new worker got its result (None); the worker must be given the function and its "
    "arguments, to call them itself",
    "run called": "run() runs in the caller's thread; start() starts a new one",
}
HANDED_TO = {
    "multiprocess": "is each client handed to a new process before the server goes back to accept()?",
    "threadpool": "is each client handed to the pool (pool.submit) before the server goes back to accept()?",
    "eventloop": "do on_readable() and on_writable() call recv() and send() once, without waiting for more?",
}
HANDED_TO_THREAD = "is each client handed to a new thread before the server goes back to accept()?"


def served_in_parent(server, mode: str, grading) -> str:
    """Why the server serves a client itself, when it does (no worker, and the server's own process holds
    the client's connection), in the words of the likely cause; "" otherwise."""
    if mode not in WORKER:
        return ""
    threads = server.process().num_threads()
    if mode == "multiprocess" and not server.workers() and threads > 1:
        return "the multiprocess server serves clients in threads, not child processes: one Process per client"
    workers = server.workers() if mode == "multiprocess" else threads - 1
    if workers or not any(pid == server.pid for pid, _ in server.connections()):
        return ""
    patterns = grading.patterns.get(f"{mode}_server.py", [])
    found = [SERVED_IN_PARENT[p] for p in SERVED_IN_PARENT if p in patterns]
    cause = found[0] if found else HANDED_TO.get(mode, HANDED_TO_THREAD)
    return f"the server served a client itself, in its own thread, and started no {WORKER[mode]} for it: {cause}"


@check("concurrency", points={"single": 4, "multiprocess": 5, "multithread": 5}, optional=3)
def check_held_client(serve, mode, grading):
    """A silent client blocks no one (single: it does)"""
    server = serve(mode)
    served(server, "/warm-up")
    with connect(server.address) as held:
        accepted(server, 1)  # the silent client is taken (single: it is the one being served)
        reply = exchange(server.address, get("/second"), timeout=2.0, whole_reply=True)
        if mode == "single":
            expect(
                not reply.raw,
                "the single server answered a second client while the first was still connected: "
                "it should serve one client at a time, in the main thread, with no thread or process",
            )
        else:
            expect(
                reply.raw.startswith(b"HTTP/1.1 200 OK"),
                f"while one client was connected and silent, a second client got {seen(reply)} within 2 s: "
                + (served_in_parent(server, mode, grading) or HANDED_TO.get(mode, HANDED_TO_THREAD)),
            )
        # A server that drops clients who stay quiet would pass the lines above: the held client must
        # still be served once it speaks.
        try:
            held.sendall(get("/held"))
            raw, _, _ = read_until_close(held, 3.0, whole_reply=True)
        except ConnectionError as exc:
            raw = f"a broken connection ({type(exc).__name__})".encode()
        expect(
            raw.startswith(b"HTTP/1.1 200 OK"),
            "the client that stayed silent for a while got no reply once it sent its request: "
            "a quiet client must still be served, not dropped",
        )
    served(server, "/after", when="after the held client left")


@check("concurrency", points={"single": 3, "multiprocess": 4, "multithread": 3})
def check_mechanism(serve, mode, grading):
    """A process, a thread, or nothing per client"""
    server = serve(mode)
    served(server, "/warm-up")
    with connect(server.address), connect(server.address):
        if mode == "multiprocess":
            expect(
                eventually(lambda: len(server.workers()) == 2, 2.0),
                f"with 2 clients connected, the server had "
                f"{plural(len(server.workers()), 'child process', 'child processes')} serving them, not 2: "
                f"one multiprocessing.Process per client{cause(server, mode, grading)}",
            )
            expect(server.process().num_threads() == 1, "the multiprocess server started threads: use processes only")
        elif mode == "multithread":
            expect(
                eventually(lambda: server.process().num_threads() >= 3, 2.0),
                f"with 2 clients connected, the server had {plural(server.process().num_threads(), 'thread')}: "
                f"expected the main thread plus one threading.Thread per client{cause(server, mode, grading)}",
            )
            expect(not server.workers(), "the multithread server started child processes: use threads only")
        else:
            accepted(server, 1)
            expect(
                server.process().num_threads() == 1 and not server.workers(),
                f"the single server had {plural(server.process().num_threads(), 'thread')} and "
                f"{plural(len(server.workers()), 'child process', 'child processes')}: "
                "it should serve clients in the main thread only",
            )
    served(server, "/after", when="after the two clients left")


def cause(server, mode: str, grading) -> str:
    """ ": " and the likely cause when the server serves clients itself, else ""."""
    found = served_in_parent(server, mode, grading)
    return f": {found}" if found else ""
