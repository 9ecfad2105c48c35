"""Concurrency, proved by witnesses rather than timing: clients that connect and send nothing.
24 points."""

from autograder.checks.probes import (
    BESIDE_HELD,
    HANDED_TO,
    HANDED_TO_THREAD,
    REPLY,
    accepted,
    blocking_cause,
    check,
    eventually,
    plural,
    seen,
    served,
)
from autograder.client import connect, exchange, get, read_until_close
from autograder.marks import Deduction, expect


@check("concurrency", points={"single": 4, "multiprocess": 5, "multithread": 5}, optional=3)
def check_held_client(serve, mode, grading):
    """Who waits for a silent client

    A silent client blocks no one in the concurrent servers; the single server serves it alone, and a second
    client waits (that is the design the lab measures).
    """
    server = serve(mode)
    served(server, "/warm-up")
    with connect(server.address) as held:
        accepted(server, 1)  # the silent client is taken (single: it is the one being served)
        wait = 2.0 if mode == "single" else BESIDE_HELD  # the single server must not answer: 2 s tells that
        reply = exchange(server.address, get("/second"), timeout=wait, whole_reply=True)
        if mode == "single":
            expect(
                not reply.raw,
                "the single server answered a second client while the first was still connected: "
                "it should serve one client at a time, in the main thread, with no thread or process",
            )
        elif not reply.raw.startswith(b"HTTP/1.1 200 OK"):
            found = blocking_cause(server, mode, grading.patterns)
            raise Deduction(
                f"while one client was connected and silent, a second client got {seen(reply)} within {wait:g} s: "
                + (found or HANDED_TO.get(mode, HANDED_TO_THREAD)),
                found,
            )
        # A server that drops clients who stay quiet would pass the lines above: the held client must
        # still be served once it speaks.
        try:
            held.sendall(get("/held"))
            raw, _, _ = read_until_close(held, REPLY, whole_reply=True)
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
    """Workers: process, thread, none

    A process, a thread, or nothing per client.
    """
    server = serve(mode)
    served(server, "/warm-up")
    with connect(server.address), connect(server.address):
        if mode == "multiprocess":
            if not eventually(lambda: len(server.workers()) == 2, 2.0):
                found = blocking_cause(server, mode, grading.patterns)
                children = plural(len(server.workers()), "child process", "child processes")
                raise Deduction(
                    f"with 2 clients connected, the server had {children} serving them, not 2 (one per client)"
                    + (f": {found}" if found else ""),
                    found,
                )
            expect(
                server.process().num_threads() == 1,
                "the multiprocess server started threads: its clients are served by processes alone",
            )
        elif mode == "multithread":
            if not eventually(lambda: server.process().num_threads() >= 3, 2.0):
                found = blocking_cause(server, mode, grading.patterns)
                threads = plural(server.process().num_threads(), "thread")
                raise Deduction(
                    f"with 2 clients connected, the server had {threads}, not 3 (the main thread and one per client)"
                    + (f": {found}" if found else ""),
                    found,
                )
            expect(
                not server.workers(),
                "the multithread server started child processes: its clients are served by threads alone",
            )
        else:
            accepted(server, 1)
            expect(
                server.process().num_threads() == 1 and not server.workers(),
                f"the single server had {plural(server.process().num_threads(), 'thread')} and "
                f"{plural(len(server.workers()), 'child process', 'child processes')}: "
                "it should serve clients in the main thread only",
            )
    served(server, "/after", when="after the two clients left")
