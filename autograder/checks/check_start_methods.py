"""Start methods: the multiprocess server under fork, spawn and forkserver. 8 points."""

import contextlib

import psutil
import pytest

from autograder.checks.probes import BESIDE_HELD, accepted, blocking_cause, check, eventually, seen, served
from autograder.client import connect, exchange, get
from autograder.marks import Deduction, expect

MAIN_GUARD = (
    ": spawn and forkserver start a fresh interpreter that imports your module, and it started the server "
    "again: the start-up must run only when the module is run as the program, not when it is imported"
)
SECOND_START = ("unrecognized arguments", "bootstrapping phase", "cannot listen on")


def reimported(server) -> bool:
    """Whether a child ran the server's start-up code again (a second ready line, or the errors of a
    second start): what a module without the `__main__` guard does under spawn and forkserver."""
    return server.output().count("Serving on") > 1 or any(sign in server.errors() for sign in SECOND_START)


@check("start-methods", points={"fork": 2, "spawn": 3, "forkserver": 3}, modes=("multiprocess",))
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def check_start_method(serve, mode, method, grading):
    """Concurrent under

    Serves concurrently under the start method that --start-method names, with children it started.
    """
    server = serve(mode, "--start-method", method)
    try:
        served(server, "/first", when=f"under --start-method {method}")
    except Deduction as exc:
        raise Deduction(f"{exc}{MAIN_GUARD if method != 'fork' and reimported(server) else ''}") from None
    with connect(server.address):
        accepted(server, 1)
        reply = exchange(server.address, get("/second"), timeout=BESIDE_HELD, whole_reply=True)
        if not reply.raw.startswith(b"HTTP/1.1 200 OK"):
            guard = method != "fork" and reimported(server)
            found = "" if guard else blocking_cause(server, mode, grading.patterns)
            raise Deduction(
                f"under --start-method {method}, with one client connected and silent, a second client got "
                f"{seen(reply)}" + (MAIN_GUARD if guard else f": {found}" if found else ""),
                found,
            )
        workers = []  # one look at a time: a server may start or end a child between two looks

        def one_left() -> bool:
            workers[:] = server.workers()
            return len(workers) == 1

        expect(
            eventually(one_left, 3.0),
            f"under --start-method {method}, {len(workers)} child processes were left, not just the held client's",
        )
        (worker,) = workers
        started = started_by(server, worker)
        expect(
            started == method,
            f"under --start-method {method}, the child serving a client was started by {started}: "
            "the children must come from the context of the method asked for (multiprocessing.Process starts them "
            "by the platform's default method)",
        )


def started_by(server, worker: psutil.Process) -> str:
    """How a child was started, from what the system shows of it: spawn runs a fresh interpreter with
    multiprocessing's spawn_main; forkserver's children are forked by the fork server; fork's by the
    server itself, as copies of it. (A child that ended meanwhile: psutil's NoSuchProcess, the
    submission's doing, which the check deducts.)"""
    with contextlib.suppress(psutil.AccessDenied):
        command = " ".join(worker.cmdline())
        if "spawn_main" in command or "--multiprocessing-fork" in command:
            return "spawn"
        parent = worker.parent()
        if parent is not None and "multiprocessing.forkserver" in " ".join(parent.cmdline()):
            return "forkserver"
        if parent is not None and parent.pid == server.pid:
            return "fork"
    return "an unknown method"
