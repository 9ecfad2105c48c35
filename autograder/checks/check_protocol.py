"""Protocol: what goes over the wire, 13 points per mode, and 1 in the hidden checks."""

import socket
import time

from autograder.checks.probes import CLOSE, REPLY, check, eventually, seen, served
from autograder.client import Reply, connect, exchange, get, read_until_close, reset
from autograder.harness import ProbeError
from autograder.marks import Deduction, expect

RECV_HINT = "keep reading until the blank line \\r\\n\\r\\n that ends the head"
SLOW_NETWORK_BUFFER = 4096  # bytes of send buffer: the kernel doubles it; loopback's grows to megabytes

CLOSE_HINT = {
    "multiprocess": "does the parent close its copy of the socket after starting the child?",
    "eventloop": "does the loop close the socket once on_writable() has sent the whole reply?",
}
CLOSE_HINT_DEFAULT = "does handle_client close the socket (the given `with` block) once it has replied?"


@check("protocol", points=1, optional=1)
def check_status_line_and_crlf(serve, mode):
    """Status line and CRLF endings

    Status line, and CRLF line endings.
    """
    reply = exchange(serve(mode).address, get(), timeout=REPLY, whole_reply=True)
    expect(reply.raw, f"a GET request got {seen(reply)}")
    expect(
        reply.raw.startswith(b"HTTP/1.1 200 OK"),
        f"the reply should begin with the status line HTTP/1.1 200 OK; it begins {reply.raw[:24]!r}",
    )
    head = reply.raw.split(b"\r\n\r\n", 1)[0]
    expect(
        b"\r\n\r\n" in reply.raw and b"\n" not in head.replace(b"\r\n", b""),
        "the head's lines end with \\n only: HTTP wants \\r\\n (CRLF) after the status line and after every "
        "header, then an empty \\r\\n line before the body",
    )


@check("protocol", points=1, optional=1)
def check_headers(serve, mode):
    """Headers: type, length, close

    Headers: Content-Type, Content-Length, Connection.
    """
    request = get("/headers")
    reply = exchange(serve(mode).address, request, timeout=REPLY, whole_reply=True)
    expect(reply.raw, f"a GET request got {seen(reply)}")
    headers = reply.headers
    expect(
        headers.get("content-type") == "text/html",
        f"Content-Type should be text/html, not {headers.get('content-type')}",
    )
    expect(headers.get("connection") == "close", f"Connection should be close, not {headers.get('connection')}")
    expect(
        headers.get("content-length") == str(len(reply.body)),
        f"Content-Length says {headers.get('content-length')} but the body has {len(reply.body)} bytes",
    )


@check("protocol", points=1, optional=1)
def check_echo(serve, mode):
    """The body echoes the request"""
    request = get("/echo?x=1")
    reply = exchange(serve(mode).address, request, timeout=REPLY, whole_reply=True)
    expect(reply.raw, f"a GET request got {seen(reply)}")
    expect(
        reply.body == request,
        f"the body should be the request itself ({len(request)} bytes); it is {reply.body[:40]!r}",
    )


@check("protocol", points=1, optional=1)
def check_connection_closes_after_reply(serve, mode):
    """Closes right after the reply

    The connection closes right after the reply.
    """
    server = serve(mode)
    for i in range(3):  # a parent that keeps its copy shows from the first request on
        reply = exchange(server.address, get(f"/{i}"), timeout=REPLY, close_within=CLOSE)
        expect(reply.raw, f"request {i + 1} of 3 got {seen(reply)}")
        if not reply.closed:
            raise Deduction(
                f"request {i + 1} of 3 got its reply, but the client never saw the connection close within "
                f"{CLOSE:g} s of it: {still_open(server, mode)}",
            )


def still_open(server, mode: str) -> str:
    """Who still holds the socket of a client that got its reply and closed its side, as the server shows it."""
    holders = eventually_holders(server)
    if mode == "multiprocess" and server.pid in holders:
        return (
            "the server's own process still holds the client's socket after the reply: the parent's copy of it, "
            "which the child's close() does not close"
        )
    if holders and 0 not in holders:
        worker = "a child process" if mode == "multiprocess" else "the server"
        return f"{worker} still holds the client's socket after the reply: it is never closed"
    return CLOSE_HINT.get(mode, CLOSE_HINT_DEFAULT)


def eventually_holders(server) -> set[int]:
    """The pids holding a connection whose client has closed it, within a moment of the close."""
    found: set[int] = set()

    def seen() -> bool:
        found.update(server.lingering())
        return bool(found)

    eventually(seen, 0.5)
    return found


@check("protocol", points=1, optional=1)
def check_request_in_pieces(serve, mode):
    """A request in three pieces"""
    request = get("/pieces")
    reply = exchange(
        serve(mode).address, request[:5], request[5:25], request[25:], pause=0.15, timeout=REPLY, whole_reply=True
    )
    expect(
        reply.body == request,
        f"a request sent in three pieces got {seen(reply)}"
        + (f": one recv() returns only what has arrived; {RECV_HINT}" if reply.raw.startswith(b"HTTP/1.1 ") else ""),
    )


@check("protocol", points=1, optional=1)
def check_blank_line_split(serve, mode):
    """A blank line split in two

    The blank line that ends the head arrives split between two pieces: its end is found in all that was
    read, not in one piece.
    """
    server = serve(mode)
    request = get("/blank-line-split")
    for cut in (3, 2, 1):  # every split of it: b"\r" then b"\n\r\n", b"\r\n" then b"\r\n", b"\r\n\r" then b"\n"
        reply = exchange(server.address, request[:-cut], request[-cut:], pause=0.15, timeout=REPLY, whole_reply=True)
        expect(
            reply.body == request,
            f"a request whose blank line \\r\\n\\r\\n came split, {request[-cut - 4 : -cut]!r} then "
            f"{request[-cut:]!r}, got {seen(reply)}"
            + (
                ": the end of the head must be looked for in all the bytes read so far, not in the last piece"
                if not reply.raw or reply.raw.startswith(b"HTTP/1.1 ")
                else ""
            ),
        )


@check("protocol", points=1, optional=1)
def check_large_head(serve, mode):
    """A 6 KiB request head"""
    request = get("/big")[:-2] + b"X-Padding: " + b"p" * 6144 + b"\r\n\r\n"
    reply = exchange(serve(mode).address, request[:3000], request[3000:], timeout=REPLY, whole_reply=True)
    expect(
        reply.body == request,
        f"a 6 KiB request got {seen(reply)}"
        + (f": one recv(1024) reads only its first part; {RECV_HINT}" if reply.raw.startswith(b"HTTP/1.1 ") else ""),
    )


@check("protocol", points=1, optional=1)
def check_whole_reply_to_slow_reader(serve, mode, grading):
    """60 KiB to a client reading late

    A 60 KiB reply to a client that reads late.
    """
    server = serve(mode)
    untested = server.shrink_send_buffer(SLOW_NETWORK_BUFFER)  # a server with no listening socket deducts
    if untested:  # the reply would fit in loopback's buffers: send() and sendall() could not be told apart
        raise ProbeError(
            f"the server's send buffer could not be made small here, to tell send() from sendall(): {untested}"
        )
    request = get("/slow-reader")[:-2] + b"X-Padding: " + b"s" * (60 * 1024) + b"\r\n\r\n"
    with connect(server.address, receive_buffer=SLOW_NETWORK_BUFFER) as sock:
        sock.sendall(request)
        time.sleep(0.5)  # reads late, as a client on a slow network does: the server's send buffer fills
        raw, _, _ = read_until_close(sock, 5.0, whole_reply=True)
    reply = Reply(raw)  # its head split as lenient clients split it: the line endings are 1.1's to judge
    expect(
        raw.startswith(b"HTTP/1.1 200 OK") and reply.body == request,
        f"a client that sent a {len(request) // 1024} KiB request and read the reply slowly got "
        + (short_reply(reply, len(request), grading, mode) if raw.startswith(b"HTTP/1.1 ") else "no reply"),
    )


def short_reply(reply: Reply, sent: int, grading, mode: str) -> str:
    """What a short echo says of its cause: a reply shorter than its own Content-Length stopped while being
    sent; one as long as it says, but shorter than the request, echoes a request that was read in part."""
    length = reply.headers.get("content-length", "")
    got = f"only {len(reply.body)} of the {sent} bytes of its echo"
    if length.isdigit() and len(reply.body) < int(length):
        files = ("handler.py", f"{mode}_server.py")  # the code that serves this mode's clients
        sends = any("send called" in grading.patterns.get(name, []) for name in files)
        why = (
            "send() writes only what fits in the socket's buffer and returns how much it wrote"
            if sends
            else ("the reply stopped before the end its own Content-Length announces")
        )
        return f"{got}, though its Content-Length says {length}: {why}; the whole reply must be sent"
    return f"{got}, and its Content-Length says as much: the server read only part of the request; {RECV_HINT}"


@check("protocol", points=1, optional=1)
def check_bad_request(serve, mode):
    """400 to a malformed request line

    400 for a malformed request line.
    """
    server = serve(mode)
    for bad in (b"HELLO\r\n\r\n", b"GET /\r\n\r\n", b"\xff\xfe\x00\x80binary\r\n\r\n"):
        reply = exchange(server.address, bad, timeout=REPLY, whole_reply=True)
        expect(
            reply.status_line == b"HTTP/1.1 400 Bad Request",
            f"the request {bad!r} should get 400; it got {seen(reply)}",
        )


ANY_METHOD = (
    b"POST /form HTTP/1.1\r\nHost: lab\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: 11\r\n\r\nhello=world",
    b"DELETE /items/7 HTTP/1.1\r\nHost: lab\r\n\r\n",
    b"PROPFIND /calendar HTTP/1.1\r\nHost: lab\r\nDepth: 1\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: lab\r\n\r\n",
    b"GET /old HTTP/1.0\r\n\r\n",
)


@check("protocol", points=1, optional=1)
def check_any_method(serve, mode):
    """Any method: 200 and its echo

    Any well-formed request line gets 200 and the echo of what was read: POST with a body, DELETE, a WebDAV
    method, OPTIONS *, HTTP/1.0.
    """
    server = serve(mode)
    for request in ANY_METHOD:
        head = request.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        reply = exchange(server.address, request, timeout=REPLY, whole_reply=True)
        line = request.split(b"\r\n", 1)[0]
        expect(
            reply.status_line == b"HTTP/1.1 200 OK",
            f"the well-formed request line {line!r} got {seen(reply)}: any method gets 200 OK, not only GET",
        )
        expect(
            reply.body.startswith(head) and request.startswith(reply.body),
            f"the request {line!r} got a body of {len(reply.body)} bytes beginning {reply.body[:32]!r}: the body "
            "echoes what was read of the request, its whole head at least",
        )


@check("protocol", points=1, optional=1)
def check_survives_bad_clients(serve, mode):
    """Survives empty, garbage, resets

    Survives empty, garbage and reset clients.
    """
    server = serve(mode, "--work-ms", "50")
    with connect(server.address) as sock:
        sock.shutdown(socket.SHUT_WR)
        raw, _, _ = read_until_close(sock, 2.0)
    expect(
        not raw,
        f"a client that closed its side without sending anything got a reply beginning {raw[:40]!r}: "
        "a client that sends nothing gets nothing (nobody is there to read it)",
    )
    served(server, "/after-empty", when="after an empty connection")
    exchange(server.address, b"\xff\xfe\x00\x80garbage\r\n\r\n", timeout=2.0)
    served(server, "/after-garbage", when="after binary garbage")
    for _ in range(3):
        sock = connect(server.address)
        sock.sendall(get())
        reset(sock)  # gone before the reply: the server's sendall meets a reset connection
    time.sleep(0.3)
    expect(
        server.popen.poll() is None,
        f"the server died after a client reset its connection (exit status {server.popen.poll()})",
    )
    served(server, "/after-reset", when="after clients reset their connections")


@check("protocol", points=1)
def check_each_request_logged(serve, mode):
    """One log line per request

    Each request is logged once, with its client and request line.
    """
    server = serve(mode)
    expected = []
    for i in range(3):
        with connect(server.address) as sock:
            client = sock.getsockname()
            sock.sendall(get(f"/logged-{i}"))
            raw, _, _ = read_until_close(sock, 2.0, whole_reply=True)
        expect(raw.startswith(b"HTTP/1.1 200 OK"), f"request {i + 1} of 3 got {raw[:40]!r}, not a 200 reply")
        expected.append((f"[Client {client!r} Info] GET /logged-{i} HTTP/1.1", f"GET /logged-{i} from {client}"))

    def logged() -> list[int]:
        lines = server.output_tail().splitlines()
        return [lines.count(line) for line, _ in expected]

    eventually(lambda: all(logged()), 2.0)  # a server may log just after its reply
    for count, (_, what) in zip(logged(), expected, strict=True):
        expect(
            count == 1,
            f"the request {what} was logged {count} times, not once: the server's log should hold one line per "
            "request, with the client's address and the request line",
        )


@check("protocol", points=1)
def check_work_before_reply(serve, mode):
    """--work-ms work before the reply

    The --work-ms work comes before each reply.
    """
    server = serve(mode, "--work-ms", "400")
    for i in range(2):
        reply = exchange(server.address, get(f"/work-{i}"), timeout=REPLY, whole_reply=True)
        expect(reply.raw.startswith(b"HTTP/1.1 200 OK"), f"with --work-ms 400, request {i + 1} got {seen(reply)}")
        expect(
            reply.seconds >= 0.4,
            f"with --work-ms 400, request {i + 1} got its reply after {reply.seconds * 1000:.0f} ms: the work that "
            "--work-ms sets must be done for each request, before its reply",
        )
