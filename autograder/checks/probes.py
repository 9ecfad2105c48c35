"""What the checks do to a server, and how they say what a client saw, in a student's terms."""

import errno
import functools
import time
from collections.abc import Callable

import psutil

from autograder import marks
from autograder.client import Reply, connect, exchange, get, read_until_close
from autograder.harness import ProbeError, ServerGone
from autograder.marks import Deduction, expect

OWN_DOING = {
    errno.EADDRNOTAVAIL: "no local port was left for a client: does the server hold every port of its network?"
}


def check(*args, **kwargs):
    """marks.check, for a check that deducts, with the reason, what only the submission can cause while
    it is looked at: its process ended, a process of it vanished (psutil's NoSuchProcess), it let go of
    its listening socket (harness.ServerGone), or it used up its network's ports. Anything else that goes
    wrong is still a fault of the grader."""
    mark = marks.check(*args, **kwargs)

    def decorate(function: Callable) -> Callable:
        @functools.wraps(function)
        def judged(*call_args, **call_kwargs):
            try:
                return function(*call_args, **call_kwargs)
            except ServerGone as exc:
                raise Deduction(f"{exc}, while the check looked at it") from None
            except psutil.NoSuchProcess as exc:
                raise Deduction(f"a process of the server (pid {exc.pid}) ended while the check looked at it") from None
            except OSError as exc:
                if exc.errno not in OWN_DOING:
                    raise
                raise Deduction(f"{OWN_DOING[exc.errno]} ({exc.strerror})") from None

        return mark(judged)

    return decorate


def seen(reply: Reply) -> str:
    """What the client got, in a few words that follow "got"."""
    if reply.error and not reply.raw:
        return f"no reply: its connection failed ({reply.error})"
    if not reply.raw:
        return "no reply: the connection closed" if reply.closed else "no reply at all"
    return f"a reply beginning {reply.raw[:48]!r}"


REPLY = 10.0  # seconds a reply may take: a correct server replies at once, and on a starved machine well within this
CLOSE = 3.0  # seconds after its reply within which the connection must close (a correct server: at once)
BESIDE_HELD = 5.0  # seconds a reply may take while a silent client is held: well before the idle timeout (10 s)
# lets the silent client go, and so frees a server that serves one client at a time


def served(server, path: str = "/", when: str = "", timeout: float = REPLY) -> Reply:
    """A GET that must be answered with a 200 status line (the other checks judge the rest of the
    reply); when says after what, for the feedback."""
    reply = exchange(server.address, get(path), timeout=timeout, whole_reply=True)
    expect(
        reply.raw.startswith(b"HTTP/1.1 200 OK"),
        f"{when + ', ' if when else ''}a plain GET request got {seen(reply)}, not a 200 reply",
    )
    return reply


def eventually(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Whether condition() becomes true within timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def accepted(server, count: int, timeout: float = 3.0) -> bool:
    """Whether the server's processes come to hold connections from count clients (the evidence that it
    accepted them, rather than a pause long enough to have done so) within timeout seconds."""
    return eventually(lambda: len({client for _, client in server.connections()}) >= count, timeout)


def plural(count: int, one: str, many: str = "") -> str:
    """'1 thread', '2 threads'; many for irregular plurals ('child processes')."""
    return f"{count} {one if count == 1 else many or one + 's'}"


# Causes: a basic mistake that explains the failure of several checks. The check that owns it states it;
# the others that lose points to it say "follows from" that check (results.feedback), once.

MISREAD = (
    "a plain GET request got 400 Bad Request: the server judges a well-formed request line malformed "
    "(any line METHOD TARGET HTTP/1.x gets 200 OK)"
)
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
ONE_AT_A_TIME = (
    "clients are served one at a time: while a {worker} served one client, the server accepted no other; it "
    "waits for each client's {worker} to finish before it goes back to accept()"
)


def served_in_parent(server, mode: str, patterns: dict[str, list[str]]) -> str:
    """Why the server serves a connected client itself, when it does (no worker, and the server's own process
    holds the client's connection), in the words of the likely cause; "" otherwise."""
    if mode not in WORKER:
        return ""
    threads = server.process().num_threads()
    if mode == "multiprocess" and not server.workers() and threads > 1:
        return "the multiprocess server serves clients in threads, not child processes: one Process per client"
    workers = server.workers() if mode == "multiprocess" else threads - 1
    if workers or not any(pid == server.pid for pid, _ in server.connections()):
        return ""
    found = [SERVED_IN_PARENT[p] for p in SERVED_IN_PARENT if p in patterns.get(f"{mode}_server.py", [])]
    cause = found[0] if found else HANDED_TO.get(mode, HANDED_TO_THREAD)
    return f"the server served a client itself, in its own thread, and started no {WORKER[mode]} for it: {cause}"


def blocking_cause(server, mode: str, patterns: dict[str, list[str]], connected: int = 2) -> str:
    """Why a client waits while another is connected, from what the server shows (called while connected
    clients are there, and not all of them accepted): it serves the client itself, or a worker serves one
    while the server waits for it; "" when neither is seen."""
    found = served_in_parent(server, mode, patterns)
    if found or mode not in WORKER:
        return found
    workers = len(server.workers()) if mode == "multiprocess" else server.process().num_threads() - 1
    taken = len({client for _, client in server.connections()})
    return ONE_AT_A_TIME.format(worker=WORKER[mode]) if workers == 1 and taken == 1 < connected else ""


def diagnose(serve, mode: str, patterns: dict[str, list[str]]) -> str:
    """The basic cause that explains a check's failure, seen on a fresh server of the mode: a plain GET gets
    400 (the head is misread), or a second client gets no reply while one is connected (blocking_cause); "" when
    the basics hold, or cannot be seen (the server does not start or does not reply: the check says so)."""
    try:
        server = serve(mode)
        reply = exchange(server.address, get("/diagnosis"), timeout=REPLY, whole_reply=True)
        if reply.status_line.startswith(b"HTTP/1.1 400"):
            return MISREAD
        if not reply.raw.startswith(b"HTTP/1.1 200 OK") or mode == "single":
            return ""
        with connect(server.address):
            accepted(server, 1, 2.0)
            with connect(server.address) as second:
                second.sendall(get("/second"))
                if read_until_close(second, BESIDE_HELD, whole_reply=True)[0]:  # served beside the first
                    return ""
                return blocking_cause(server, mode, patterns)
    except (Deduction, OSError, psutil.Error, ServerGone, ProbeError):  # the check's own feedback says enough
        return ""
