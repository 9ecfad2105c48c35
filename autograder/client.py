"""A raw-socket client that sees what an HTTP library hides: the exact bytes of a reply, and
whether and when the server closed the connection."""

import re
import socket
import struct
import time
from dataclasses import dataclass, field


class Address(tuple):
    """(host, port), and the network it is reached in: the box of its server (harness.Network), where the
    server has one of its own; None: this process's own network."""

    network = None

    def __new__(cls, host: str, port: int, network=None) -> "Address":
        address = super().__new__(cls, (host, port))
        address.network = network
        return address


@dataclass
class Reply:
    """What came back on one connection."""

    raw: bytes = b""
    closed: bool = False  # the server closed the connection (end-of-file) within the timeout
    seconds: float = 0.0  # from connecting until end-of-file, or until we gave up
    error: str = ""  # a connection error (reset, refused, ...), if any
    head: bytes = field(init=False, default=b"")
    body: bytes = field(init=False, default=b"")

    def __post_init__(self) -> None:
        # Split at the first blank line, as lenient clients (curl, requests) do: CRLF or bare LF.
        # Whether the head uses CRLF is a check of its own.
        parts = re.split(rb"\r?\n\r?\n", self.raw, maxsplit=1)
        self.head, self.body = (parts[0], parts[1]) if len(parts) == 2 else (self.raw, b"")

    @property
    def status_line(self) -> bytes:
        return self.raw.split(b"\n", 1)[0].rstrip(b"\r")

    @property
    def complete(self) -> bool:
        """Whether the head and as many body bytes as its Content-Length says have arrived."""
        length = self.headers.get("content-length", "")
        return (
            len(re.split(rb"\r?\n\r?\n", self.raw, maxsplit=1)) == 2
            and length.isdigit()
            and len(self.body) >= int(length)
        )

    @property
    def headers(self) -> dict[str, str]:
        """The header fields of the head, by lower-case name."""
        fields = {}
        for line in re.split(rb"\r?\n", self.head)[1:]:
            name, sep, value = line.decode("latin-1").partition(":")
            if sep:
                fields[name.strip().lower()] = value.strip()
        return fields


def connect(address: tuple[str, int], timeout: float = 5.0, receive_buffer: int = 0) -> socket.socket:
    """A connected client socket, made in the address's network (see Address); with receive_buffer, that
    small a receive buffer (set before connecting, so that the window it offers stays small)."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    network = getattr(address, "network", None)
    sock = network.socket(family, socket.SOCK_STREAM) if network is not None else socket.socket(family)
    try:
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(timeout)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def read_until_close(
    sock: socket.socket, timeout: float, whole_reply: bool = False, close_within: float | None = None
) -> tuple[bytes, bool, str]:
    """(what the server sent, whether it closed, a connection error) until it closes, or until timeout
    seconds pass; with whole_reply, also stop once a reply with its whole Content-Length body is in;
    with close_within, wait only that long for the close once the whole reply is in."""
    data, deadline = bytearray(), time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionError as exc:
            return bytes(data), True, type(exc).__name__
        if not chunk:
            return bytes(data), True, ""
        data += chunk
        if (whole_reply or close_within is not None) and Reply(bytes(data)).complete:
            if whole_reply:
                break
            deadline, close_within = time.monotonic() + close_within, None
    return bytes(data), False, ""


def exchange(
    address: tuple[str, int],
    *pieces: bytes,
    pause: float = 0.05,
    timeout: float = 5.0,
    whole_reply: bool = False,
    close_within: float | None = None,
) -> Reply:
    """Send pieces (pausing between them, so that they arrive apart), then read until the server closes
    (or, with whole_reply, until the reply is complete by its Content-Length; with close_within, for at
    most that long after it is complete)."""
    start = time.monotonic()
    try:
        with connect(address, timeout) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i, piece in enumerate(pieces):
                if i:
                    time.sleep(pause)
                sock.sendall(piece)
            raw, closed, error = read_until_close(sock, timeout, whole_reply, close_within)
    except OSError as exc:
        return Reply(error=f"{type(exc).__name__}: {exc}", seconds=time.monotonic() - start)
    return Reply(raw, closed, time.monotonic() - start, error)


def reset(sock: socket.socket) -> None:
    """Close sock with a reset (RST) instead of an orderly close, as a crashed client would."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def get(path: str = "/", host: str = "127.0.0.1") -> bytes:
    """A minimal, well-formed GET request."""
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: concurrency-lab\r\n\r\n".encode()
