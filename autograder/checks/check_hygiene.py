"""Resource hygiene: what a server leaves behind, and how it stops. 20 points."""

import signal
import time

from autograder.checks.probes import eventually, seen, served
from autograder.client import connect, exchange, get, read_until_close
from autograder.rubric import Deduction, check, expect

POOL_WORKERS = 8  # threadpool_server.py's default --workers


@check("hygiene", points={"single": 2, "multiprocess": 3, "multithread": 3}, optional=2)
def check_burst_leaves_nothing(serve, mode):
    """Nothing left over after 200 requests"""
    server = serve(mode)
    process = server.process()
    served(server, "/warm-up")
    time.sleep(0.2)
    fds, threads = process.num_fds(), process.num_threads()
    if mode == "threadpool":  # a pool keeps its idle workers: up to --workers (8 by default) besides the main thread
        threads = max(threads, POOL_WORKERS + 1)
    for i in range(200):
        reply = exchange(server.address, get(f"/{i}"), timeout=2.0, whole_reply=True)
        expect(reply.raw.startswith(b"HTTP/1.1 200 OK"), f"request {i + 1} of a burst of 200 got {seen(reply)}")

    def settled() -> bool:
        zombies = any(c.status() == "zombie" for c in process.children())
        return not zombies and not server.workers() and process.num_fds() <= fds and process.num_threads() <= threads

    eventually(settled, 3.0)
    zombies = [c for c in process.children() if c.status() == "zombie"]
    expect(
        not zombies,
        f"{len(zombies)} finished children were never reaped (zombies): "
        "call multiprocessing.active_children() (or join) as children finish",
    )
    expect(process.num_fds() <= fds, f"open descriptors went from {fds} to {process.num_fds()}: is a socket left open?")
    expect(
        process.num_threads() <= threads,
        f"the server had {process.num_threads()} threads after the burst, {threads} at most expected",
    )
    expect(not server.workers(), f"{len(server.workers())} child processes were still running 3 s after the burst")


@check("hygiene", points=2, optional=2)
def check_graceful_shutdown(serve, mode):
    """SIGTERM, SIGINT: finish the client, exit 0"""
    servers = {signum: serve(mode) for signum in (signal.SIGTERM, signal.SIGINT)}
    request = get("/in-flight")
    socks = {signum: connect(server.address) for signum, server in servers.items()}
    try:
        for sock in socks.values():
            sock.sendall(request[:10])
        time.sleep(0.3)
        for signum, server in servers.items():  # Ctrl-C reaches the whole process group, as in a terminal
            server.send_signal(signum, group=signum == signal.SIGINT)
        time.sleep(0.3)
        for signum, sock in socks.items():
            name = signal.Signals(signum).name
            try:
                sock.sendall(request[10:])
            except ConnectionError as exc:
                raise Deduction(
                    f"after {name}, the client in the middle of its request lost its connection "
                    f"({type(exc).__name__}): let in-flight clients finish"
                ) from None
            raw, _, _ = read_until_close(sock, 5.0, whole_reply=True)
            expect(
                raw.startswith(b"HTTP/1.1 200 OK"),
                f"after {name}, the client in the middle of its request got "
                f"{f'a reply beginning {raw[:40]!r}' if raw else 'nothing'}: let in-flight clients finish",
            )
    finally:
        for sock in socks.values():
            sock.close()
    for signum, server in servers.items():
        name = signal.Signals(signum).name
        status = server.wait(15)
        expect(status is not None, f"after {name}, the server was still running 15 s later")
        expect(status == 0, f"after {name}, the server exited with status {status}, not 0")
        expect(
            eventually(lambda s=server: not any(p.pid != s.pid and p.status() != "zombie" for p in s.tree()), 2.0),
            f"after {name}, processes of the server were still running once it had exited",
        )


@check("hygiene", points=1)
def check_restart_same_port(serve, mode):
    """Restart on the same port at once"""
    first = serve(mode)
    for i in range(3):  # read until the server closes, so that it closes first: its side lingers in TIME_WAIT
        reply = exchange(first.address, get(f"/{i}"), timeout=2.0)
        expect(reply.raw.startswith(b"HTTP/1.1 200 OK"), f"a plain GET request got {seen(reply)}, not a 200 reply")
    first.kill()
    second = serve(mode, "--port", str(first.port))
    expect(second.port == first.port, f"the restarted server listens on port {second.port}, not {first.port}")
    served(second, "/restarted", when="after a restart on the same port")


@check("hygiene", points=1)
def check_listens_only_on_given_host(serve, mode):
    """Listens only on the given host"""
    server = serve(mode)
    served(server)
    listening = sorted({c.laddr for c in server.process().net_connections("inet") if c.status == "LISTEN"})
    expect(
        listening == [("127.0.0.1", server.port)],
        f"asked for 127.0.0.1, the server listens on {', '.join(f'{ip}:{port}' for ip, port in listening)}: "
        "bind to the --host address only",
    )
