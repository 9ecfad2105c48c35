"""The optional part's own witnesses: a pool stays bounded under a burst, an event loop serves
many clients from one thread. 3 points per mode, beside the checks shared with the basic modes."""

import time

from autograder.checks.probes import BESIDE_HELD, check, eventually, seen, served
from autograder.client import connect, exchange, get, read_until_close
from autograder.marks import expect

WORKERS = 4


@check("optional", points=3, modes=("threadpool",))
def check_pool_stays_bounded(serve, mode):
    """200 clients, --workers threads

    200 clients at once: all served, by at most --workers threads.
    """
    server = serve(mode, "--workers", str(WORKERS))
    served(server, "/warm-up")
    process = server.process()
    socks = [connect(server.address, timeout=20) for _ in range(200)]
    most = process.num_threads()
    try:
        for i, sock in enumerate(socks):
            sock.sendall(get(f"/{i}"))
            most = max(most, process.num_threads())
        replies = []
        for sock in socks:
            replies.append(read_until_close(sock, 20.0, whole_reply=True)[0])
            most = max(most, process.num_threads())
    finally:
        for sock in socks:
            sock.close()
    missing = sum(not raw.startswith(b"HTTP/1.1 200 OK") for raw in replies)
    expect(not missing, f"{missing} of 200 clients that came at once got no 200 reply")
    expect(
        most <= WORKERS + 1,
        f"with --workers {WORKERS}, the server ran {most} threads at once under 200 clients: the pool should "
        f"hold at most {WORKERS} workers (ThreadPoolExecutor(max_workers=workers)) beside the main thread",
    )


@check("optional", points=3, modes=("eventloop",))
def check_one_thread_serves_many(serve, mode):
    """100 held clients, one thread

    100 silent clients held: others still served, by one thread and no child.
    """
    server = serve(mode)
    served(server, "/warm-up")
    held = [connect(server.address, timeout=5) for _ in range(100)]
    try:
        for sock in held[:50]:
            sock.sendall(b"GET /slow HT")  # half a request line, then silence
        time.sleep(0.3)
        reply = exchange(server.address, get("/other"), timeout=BESIDE_HELD, whole_reply=True)
        expect(
            reply.raw.startswith(b"HTTP/1.1 200 OK"),
            f"with 100 silent clients held, another client got {seen(reply)} within {BESIDE_HELD:g} s: a read or a "
            "write that waits blocks every client of an event loop",
        )
        process = server.process()
        expect(
            eventually(lambda: process.num_threads() == 1, 1.0) and not server.workers(),
            f"the event-loop server had {process.num_threads()} threads and {len(server.workers())} child "
            "processes: it should serve every client from its one thread",
        )
    finally:
        for sock in held:
            sock.close()
