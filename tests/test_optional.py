"""The optional part's servers: a bounded thread pool and a single-threaded event loop."""

import signal
import time

from autograder.checks.probes import eventually
from autograder.client import connect, exchange, get, read_until_close


def test_the_pool_never_runs_more_threads_than_its_workers(start_server):
    server = start_server("threadpool", "--workers", "4")
    process = server.process()
    socks = [connect(server.address, timeout=20) for _ in range(200)]
    most = process.num_threads()
    try:
        for i, sock in enumerate(socks):
            sock.sendall(get(f"/{i}"))
            most = max(most, process.num_threads())
        replies = [read_until_close(sock, 20.0) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    assert all(raw.endswith(get(f"/{i}")) and closed for i, (raw, closed, _) in enumerate(replies))
    assert most <= 5 and process.num_threads() <= 5


def test_shutdown_serves_the_clients_still_queued_in_the_pool(start_server):
    server = start_server("threadpool", "--workers", "1", "--work-ms", "200")
    socks = [connect(server.address, timeout=10) for _ in range(4)]
    for sock in socks:
        sock.sendall(get("/queued"))
    time.sleep(0.1)  # one is served, three wait in the pool's queue
    server.send_signal(signal.SIGTERM)
    replies = [read_until_close(sock, 5.0) for sock in socks]
    for sock in socks:
        sock.close()
    assert all(raw.startswith(b"HTTP/1.1 200 OK") and closed for raw, closed, _ in replies)
    assert server.wait(15) == 0


def test_the_event_loop_serves_others_with_a_thousand_idle_connections_and_one_thread(start_server):
    server = start_server("eventloop")
    idle = [connect(server.address, timeout=10) for _ in range(1000)]
    try:
        for sock in idle[::2]:
            sock.sendall(b"GET / HT")  # half of them stop in the middle of a request
        reply = exchange(server.address, get("/busy"), timeout=3.0)
        assert reply.status_line == b"HTTP/1.1 200 OK" and reply.body == get("/busy") and reply.closed
        assert server.process().num_threads() == 1 and not server.workers()
        assert server.process().num_fds() > 1000  # it really holds them all
    finally:
        for sock in idle:
            sock.close()


def test_io_work_in_the_event_loop_overlaps_instead_of_queueing(start_server):
    server = start_server("eventloop", "--work-ms", "300", "--work-kind", "io")
    socks = [connect(server.address, timeout=10) for _ in range(10)]
    start = time.monotonic()
    for sock in socks:
        sock.sendall(get("/io"))
    replies = [read_until_close(sock, 5.0) for sock in socks]
    elapsed = time.monotonic() - start
    for sock in socks:
        sock.close()
    assert all(raw.startswith(b"HTTP/1.1 200 OK") and closed for raw, closed, _ in replies)
    assert elapsed < 1.5, f"10 requests of 300 ms of I/O took {elapsed:.1f} s: the loop waited on each in turn"


def test_a_slow_writer_does_not_block_the_event_loop(start_server):
    """A client that sends its request a byte at a time holds no one up."""
    server = start_server("eventloop")
    slow = connect(server.address, timeout=10)
    try:
        for byte in get("/slow")[:10]:
            slow.sendall(bytes([byte]))
            reply = exchange(server.address, get("/fast"), timeout=1.0)
            assert reply.status_line == b"HTTP/1.1 200 OK"
        slow.sendall(get("/slow")[10:])
        raw, closed, _ = read_until_close(slow, 3.0)
        assert raw.endswith(get("/slow")) and closed
    finally:
        slow.close()
    assert eventually(lambda: server.process().num_fds() < 20)
