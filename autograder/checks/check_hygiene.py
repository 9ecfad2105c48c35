"""Resource hygiene: what a server leaves behind, and how it stops. 23 points."""

import signal
import socket
import time

from autograder.checks.probes import REPLY, accepted, blocking_cause, check, eventually, plural, seen, served
from autograder.client import connect, exchange, get, read_until_close
from autograder.marks import Deduction, expect
from autograder.sandbox import alive

POOL_WORKERS = 8  # threadpool_server.py's default --workers
BURST = 200  # requests, one after another
SETTLE = 10.0  # seconds to wait for finished children to be reaped and threads to end, after a burst
FD_SLACK = 8  # descriptors a server may hold beyond those it held after the first burst (e.g. its last child's)
IN_FLIGHT = (
    "a client in flight when the signal comes must still get its whole reply: serve() returns only once every "
    "client it took has been served"
)
WAITPID = (
    "one more per client: children reaped with os.waitpid() behind multiprocessing's back leave their Process "
    "objects behind, each holding a descriptor; multiprocessing must collect its children itself"
)


@check("hygiene", points={"single": 2, "multiprocess": 3, "multithread": 3}, optional=2)
def check_burst_leaves_nothing(serve, mode, grading):
    """Nothing grows with requests

    Nothing grows with the number of requests.
    """
    server = serve(mode)
    process = server.process()
    served(server, "/warm-up")
    threads = process.num_threads()
    if mode == "threadpool":  # a pool keeps its idle workers: up to --workers (8 by default) besides the main thread
        threads = max(threads, POOL_WORKERS + 1)

    def settled() -> bool:
        return not server.zombies() and not server.workers() and process.num_threads() <= threads

    fds, sockets = [], []  # after 200 requests, then after 400: a leak grows with them; a few more is no leak
    for burst in range(2):
        for i in range(BURST):
            reply = exchange(server.address, get(f"/{i}"), timeout=REPLY, whole_reply=True)
            expect(
                reply.raw.startswith(b"HTTP/1.1 200 OK"),
                f"request {burst * BURST + i + 1} of {2 * BURST}, sent one after another, got {seen(reply)}",
            )
        eventually(settled, SETTLE)  # a correct server settles in milliseconds; a starved one may take seconds
        zombies = server.zombies()
        expect(
            not zombies,
            f"after {(burst + 1) * BURST} requests, {len(zombies)} finished children were never reaped (zombies): "
            "a child that has ended must be reaped (its exit status collected), not left for the next client",
        )
        fds.append(process.num_fds())
        sockets.append(server.open_sockets())
    expect(
        fds[1] <= fds[0] + FD_SLACK,
        f"open descriptors went from {fds[0]} after {BURST} requests to {fds[1]} after {2 * BURST}: "
        + leak(sockets, grading.patterns.get(f"{mode}_server.py", [])),
    )
    expect(
        process.num_threads() <= threads,
        f"the server had {plural(process.num_threads(), 'thread')} after {2 * BURST} requests, "
        f"{threads} at most expected",
    )
    expect(
        not server.workers(),
        f"{plural(len(server.workers()), 'child process', 'child processes')} still running "
        f"{SETTLE:g} s after the requests",
    )


def leak(sockets: list[int], patterns: list[str]) -> str:
    """What the descriptors that grow with the requests are, as far as the server shows it."""
    if sockets[1] > sockets[0] + FD_SLACK:
        return (
            f"they are sockets ({sockets[0]} connections held open, then {sockets[1]}): a client's socket is left "
            "open by a process of the server once the client is served"
        )
    if "os.waitpid" in patterns:
        return WAITPID
    return "they are not connections to clients: something opened for each client (a file, a pipe) stays open"


@check("hygiene", points=2, optional=2)
def check_graceful_shutdown(serve, mode, grading):
    """SIGTERM/SIGINT: finish, exit 0

    SIGTERM, SIGINT: finish the clients, exit 0.
    """
    clients = 1 if mode == "single" else 3  # the single server serves one; the others wait, never accepted
    cases = {
        "SIGTERM": (signal.SIGTERM, clients),
        "SIGINT": (signal.SIGINT, clients),
        "SIGTERM with no client connected": (signal.SIGTERM, 0),
    }
    servers = {case: serve(mode) for case in cases}
    served(servers["SIGTERM"], when="before the signal")  # a server that serves nobody has no client to finish
    request = get("/in-flight")
    socks = {case: [connect(servers[case].address) for _ in range(count)] for case, (_, count) in cases.items()}
    try:
        for case, (_, count) in cases.items():
            for sock in socks[case]:
                sock.sendall(request[:10])
            if count > 1 and not accepted(servers[case], count, 5.0):  # held, or already answered: taken
                taken = len({c for _, c in servers[case].connections()}) + sum(map(answered, socks[case]))
                found = blocking_cause(servers[case], mode, grading.patterns, connected=count)
                expect(
                    taken >= count,
                    f"of {count} clients that connected at once, the server took {taken} within 5 s, so the others "
                    "were never in flight when the signal came" + (f": {found}" if found else ""),
                    cause=found,
                )
        time.sleep(0.3)  # every client is in the middle of its request when the signal comes
        for case, (signum, _) in cases.items():  # Ctrl-C reaches the whole process group, as in a terminal
            servers[case].send_signal(signum, group=signum == signal.SIGINT)
        time.sleep(0.3)
        for number in range(max(clients, 1), 0, -1):  # the last one taken finishes first: a server that waits
            time.sleep(0.3 if number < clients else 0)  # for it alone exits while the others are in flight
            for case, (_, count) in cases.items():
                if number > count:
                    continue
                sock = socks[case][number - 1]
                client = f"after {case}, client {number} of {count}, in the middle of its request,"
                early = early_reply(sock)
                expect(
                    not early.startswith(b"HTTP/1.1 400"),
                    f"{client} got 400 Bad Request for the first 10 bytes of its request: read_request() must "
                    "keep reading until the blank line \\r\\n\\r\\n that ends the head",
                )
                try:
                    sock.sendall(request[10:])
                except ConnectionError as exc:
                    raise Deduction(f"{client} lost its connection ({type(exc).__name__}): {IN_FLIGHT}") from None
                raw, _, _ = read_until_close(sock, 5.0, whole_reply=True)
                expect(
                    raw.startswith(b"HTTP/1.1 200 OK") and raw.endswith(request),
                    f"{client} got {f'a reply beginning {raw[:40]!r}' if raw else 'nothing'}: {IN_FLIGHT}",
                )
    finally:
        for sock in (sock for group in socks.values() for sock in group):
            sock.close()
    for case, server in servers.items():
        status = server.wait(15)
        expect(status is not None, f"after {case}, the server was still running 15 s later")
        expect(
            status == 0,
            f"after {case}, the server exited with status {status}, not 0"
            + (": the code after the accept loop must work when no client ever came" if "no client" in case else ""),
        )
        expect(
            eventually(lambda s=server: not any(p.pid != s.pid and alive(p) for p in s.tree()), 2.0),
            f"after {case}, processes of the server were still running once it had exited",
        )


def answered(sock) -> bool:
    """Whether the server has answered sock already (sent something, closed or reset it), without waiting."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)  # b"": closed
        return True
    except (BlockingIOError, InterruptedError):
        return False
    except ConnectionError:
        return True
    finally:
        sock.settimeout(timeout)


def early_reply(sock) -> bytes:
    """What the server has already sent to sock, without waiting and without reading it (a socket with a
    timeout would wait for data first, so it is made non-blocking for the look)."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return sock.recv(64, socket.MSG_PEEK)
    except (BlockingIOError, ConnectionError):
        return b""
    finally:
        sock.settimeout(timeout)


@check("hygiene", points=1)
def check_restart_same_port(serve, mode):
    """Restart on the same port

    Restart on the same port at once.
    """
    first = serve(mode)
    for i in range(3):  # read until the server closes, so that it closes first: its side lingers in TIME_WAIT
        reply = exchange(first.address, get(f"/{i}"), timeout=REPLY)
        expect(reply.raw.startswith(b"HTTP/1.1 200 OK"), f"a plain GET request got {seen(reply)}, not a 200 reply")
    first.kill()
    second = serve(mode, "--port", str(first.port))
    expect(second.port == first.port, f"the restarted server listens on port {second.port}, not {first.port}")
    served(second, "/restarted", when="after a restart on the same port")


@check("hygiene", points=1)
def check_listens_only_on_given_host(serve, mode):
    """Listens on the given host only

    Listens only on the given host.
    """
    server = serve(mode)
    served(server)
    listening = server.listeners()  # of every process of the server
    addresses = ", ".join(f"{ip}:{port}" for ip, port in listening) or "no address"
    expect(
        listening == [("127.0.0.1", server.port)],
        f"asked for 127.0.0.1, the server listens on {addresses}: a server listens on the --host address only",
    )


@check("hygiene", points=1)
def check_silent_client_let_go(serve, mode):
    """Idle clients are let go

    A silent client is let go after the idle timeout.
    """
    server = serve(mode, "--idle-timeout", "1")
    with connect(server.address) as sock:
        accepted(server, 1)
        raw, closed, _ = read_until_close(sock, 6.0)
    expect(
        closed,
        "with --idle-timeout 1, a client that connected and sent nothing was still connected 6 s later: a client "
        "that stays silent must be let go after the idle timeout, or it holds its worker (the single server: "
        "every client) for ever",
    )
    expect(not raw.startswith(b"HTTP/1.1 200"), f"a client that sent nothing got a reply beginning {raw[:40]!r}")
    served(server, "/after-idle", when="after a silent client was let go")
