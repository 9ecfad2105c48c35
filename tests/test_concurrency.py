"""Concurrency, proved by witnesses rather than timing: a client that connects and sends nothing."""

import time

import pytest

from autograder.checks import probes
from autograder.checks.probes import eventually
from autograder.client import connect, exchange, get, read_until_close

from conftest import mutant


def workers(server) -> tuple[int, int]:
    """(child processes that serve clients, threads of the server process)."""
    return len(server.workers()), server.process().num_threads()


def test_a_held_client_does_not_block_others_in_the_concurrent_modes(start_server, concurrent_mode):
    server = start_server(concurrent_mode)
    with connect(server.address), connect(server.address):  # two clients that never speak
        time.sleep(0.3)
        reply = exchange(server.address, get(), timeout=2.0)
        assert reply.status_line == b"HTTP/1.1 200 OK" and reply.closed
        # a child per held client and no extra thread, or a thread per held client and no child
        # (the child or thread that served the GET may take a moment to be gone)
        expected = (2, 1) if concurrent_mode == "multiprocess" else (0, 3)
        assert eventually(lambda: workers(server) == expected), workers(server)


def test_the_single_server_serves_one_client_at_a_time(start_server):
    server = start_server("single")
    with connect(server.address) as held:
        time.sleep(0.3)
        assert exchange(server.address, get(), timeout=1.0).raw == b"", "it answered while busy"
        assert workers(server) == (0, 1)
        held.sendall(get())  # once the held client is served, the others are
        raw, closed, _ = read_until_close(held, 2.0)
        assert raw.startswith(b"HTTP/1.1 200 OK") and closed
    assert exchange(server.address, get(), timeout=2.0).status_line == b"HTTP/1.1 200 OK"


def test_two_hundred_concurrent_connections_are_all_served(start_server, concurrent_mode):
    server = start_server(concurrent_mode)
    socks = [connect(server.address, timeout=20) for _ in range(200)]
    try:
        for i, sock in enumerate(socks):
            sock.sendall(get(f"/{i}"))
        replies = [read_until_close(sock, 20.0) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    for i, (raw, closed, error) in enumerate(replies):
        assert closed and not error and raw.endswith(get(f"/{i}")), (i, raw[:60], error)


def test_after_a_burst_no_zombie_fd_or_thread_is_left(start_server, concurrent_mode):
    server = start_server(concurrent_mode)
    process = server.process()
    assert exchange(server.address, get()).closed
    time.sleep(0.3)
    fds, threads = process.num_fds(), process.num_threads()
    for _ in range(200):
        assert exchange(server.address, get()).status_line == b"HTTP/1.1 200 OK"
    eventually(lambda: not process.children() and process.num_fds() <= fds and process.num_threads() <= threads)
    assert [c.status() for c in process.children(recursive=True)] == []  # no zombie, no leftover child
    assert process.num_fds() <= fds and process.num_threads() <= threads


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocess_works_under_each_start_method(start_server, method):
    server = start_server("multiprocess", "--start-method", method)
    with connect(server.address):
        time.sleep(0.5)
        reply = exchange(server.address, get("/method"), timeout=5.0)
        assert reply.status_line == b"HTTP/1.1 200 OK" and reply.body == get("/method") and reply.closed
        assert eventually(lambda: workers(server)[0] == 1), "only the held client's child should be left"
    assert server.stop() == 0


START_THREAD, START_CHILD = (
    "        thread.start()\n",
    "        context.Process(target=handle_client, args=(conn, addr)).start()\n",
)
JOINED = {  # each client's worker waited for before the next accept()
    "multithread": ("multithread_server.py", START_THREAD, START_THREAD + "        thread.join()\n"),
    "multiprocess": (
        "multiprocess_server.py",
        START_CHILD,
        START_CHILD.replace(".start()", "").replace("context", "child = context")
        + "        child.start()\n        child.join()\n",
    ),
}


def test_the_diagnosis_names_one_at_a_time_only_where_a_second_client_waits(start_server, concurrent_mode, tmp_path):
    """probes.diagnose, on real servers: a correct server (whose second client is served at once, and closed)
    has no cause to name; one that waits for each client's worker has."""
    assert probes.diagnose(start_server, concurrent_mode, {}) == ""
    file, old, new = JOINED[concurrent_mode]
    joined = mutant(tmp_path / "joined", file, old, new)
    cause = probes.diagnose(lambda mode: start_server(mode, root=joined), concurrent_mode, {})
    assert cause.startswith("clients are served one at a time: while a "), cause
