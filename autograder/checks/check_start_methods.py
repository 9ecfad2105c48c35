"""Start methods: the multiprocess server under fork, spawn and forkserver. 8 points."""

import time

import pytest

from autograder.checks.probes import eventually, seen, served
from autograder.client import connect, exchange, get
from autograder.rubric import check, expect


@check("start-methods", points={"fork": 2, "spawn": 3, "forkserver": 3}, modes=("multiprocess",))
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def check_start_method(serve, mode, method):
    """Serves concurrently under the start method"""
    server = serve(mode, "--start-method", method)
    served(server, "/first", when=f"under --start-method {method}", timeout=5.0)
    with connect(server.address):
        time.sleep(0.3)
        reply = exchange(server.address, get("/second"), timeout=5.0, whole_reply=True)
        expect(
            reply.raw.startswith(b"HTTP/1.1 200 OK"),
            f"under --start-method {method}, with one client connected and silent, a second client got {seen(reply)}"
            + (
                ": spawn and forkserver start a fresh interpreter that imports your module: is the server "
                'started only under `if __name__ == "__main__":`?'
                if method != "fork"
                else ""
            ),
        )
        expect(
            eventually(lambda: len(server.workers()) == 1, 3.0),
            f"under --start-method {method}, {len(server.workers())} child processes were left, "
            "not just the held client's",
        )
