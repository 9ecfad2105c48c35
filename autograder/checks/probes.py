"""What the checks do to a server, and how they say what a client saw, in a student's terms."""

import errno
import functools
import time
from collections.abc import Callable

import psutil

from autograder import marks
from autograder.client import Reply, exchange, get
from autograder.harness import ServerGone
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


def served(server, path: str = "/", when: str = "", timeout: float = 2.0) -> Reply:
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
