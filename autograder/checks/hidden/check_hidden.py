"""Hidden checks: variants of the public ones (other request sizes and split points, other paths, more
clients at once) that a correct server passes and a server tuned to the public checks may not. They run
in official grading only: the students' bundle leaves this folder out, and the self-check says how many
points it holds (marks.HIDDEN_POINTS)."""

from autograder.checks.probes import check, seen
from autograder.client import connect, exchange, get, read_until_close
from autograder.marks import expect

CLIENTS_AT_ONCE = 8


def variants() -> list[tuple[str, list[bytes]]]:
    """(what it is, the pieces it is sent in): sizes, split points and paths the public checks do not use."""
    long_path = get("/" + "d/" * 40 + "leaf?q=%20x&y=" + "z" * 200)
    head_30k = get("/thirty")[:-2] + b"X-Filler: " + b"f" * (30 * 1024) + b"\r\n\r\n"  # its last piece: b"\n"
    return [
        ("a request sent one byte, then the rest", [long_path[:1], long_path[1:]]),
        ("a 30 KiB head sent in four uneven pieces", [head_30k[:7], head_30k[7:9000], head_30k[9000:-1], b"\n"]),
    ]


@check("protocol", points=1, hidden=True)
def check_other_requests(serve, mode):
    """Other sizes, splits and paths

    Other requests: sizes, split points, paths, 8 clients at once.
    """
    server = serve(mode)
    for what, pieces in variants():
        request = b"".join(pieces)
        reply = exchange(server.address, *pieces, pause=0.1, timeout=3.0, whole_reply=True)
        expect(reply.body == request, f"{what} got {seen(reply)}, not the echo of its {len(request)} bytes")
    requests = [get(f"/client-{i}?{'k' * i * 50}") for i in range(CLIENTS_AT_ONCE)]
    socks = [connect(server.address) for _ in requests]
    try:
        for sock, request in zip(socks, requests, strict=True):
            sock.sendall(request)
        for i, (sock, request) in enumerate(zip(socks, requests, strict=True), 1):
            raw, _, _ = read_until_close(sock, 5.0, whole_reply=True)
            expect(
                raw.startswith(b"HTTP/1.1 200 OK") and raw.endswith(request),
                f"of {CLIENTS_AT_ONCE} clients that sent their requests at once, client {i} got "
                f"{f'a reply beginning {raw[:40]!r}' if raw else 'nothing'}, not the echo of its own request",
            )
    finally:
        for sock in socks:
            sock.close()
