"""The protocol of the handler, against each reference server: what goes over the wire."""

import re
import socket
import time

import pytest

from autograder import ALL_MODES
from autograder.checks import check_protocol
from autograder.client import Reply, connect, exchange, get, read_until_close, reset


def test_reply_is_an_http_message_with_crlf_headers_and_the_request_echoed(start_server, any_mode):
    server = start_server(any_mode)
    request = get("/hello")
    reply = exchange(server.address, request)
    assert reply.status_line == b"HTTP/1.1 200 OK"
    assert b"\n" not in reply.head.replace(b"\r\n", b""), "every line of the head ends with CRLF"
    assert reply.headers == {"content-type": "text/html", "content-length": str(len(request)), "connection": "close"}
    assert reply.body == request


def test_connection_closes_right_after_the_reply(start_server, any_mode):
    server = start_server(any_mode)
    for _ in range(3):  # the parent-keeps-the-socket bug shows from the second request on
        reply = exchange(server.address, get(), timeout=5.0, close_within=1.0)
        assert reply.complete and reply.closed, reply


def test_the_close_check_counts_its_second_from_the_reply_not_from_the_request(start_server):
    """A busy machine can delay a correct reply past 1 s: the close that follows it is still on time."""
    server = start_server("multithread", "--work-ms", "1200", "--work-kind", "io")
    check_protocol.check_connection_closes_after_reply(lambda mode: server, "multithread")  # raises if it deducts


def test_request_in_three_pieces_is_read_whole(start_server, any_mode):
    server = start_server(any_mode)
    request = get("/pieces")
    reply = exchange(server.address, request[:5], request[5:30], request[30:], pause=0.1)
    assert reply.status_line == b"HTTP/1.1 200 OK"
    assert reply.body == request


def test_six_kib_head_is_read_whole(start_server, any_mode):
    server = start_server(any_mode)
    request = get("/big")[:-2] + b"X-Padding: " + b"a" * 6144 + b"\r\n\r\n"
    reply = exchange(server.address, request[:3000], request[3000:])
    assert reply.error == "" and reply.headers["content-length"] == str(len(request))
    assert reply.body == request


def test_malformed_request_line_gets_400_with_the_same_headers(start_server, any_mode):
    server = start_server(any_mode)
    for bad in (b"HELLO\r\n\r\n", b"GET /\r\n\r\n", b"GET / HTTP/2.0 extra\r\n\r\n"):
        reply = exchange(server.address, bad)
        assert reply.status_line == b"HTTP/1.1 400 Bad Request", bad
        assert reply.headers["content-length"] == str(len(bad)) and reply.body == bad


def test_binary_garbage_is_answered_400_and_logged_with_replacement_characters(start_server, any_mode):
    server = start_server(any_mode)
    garbage = b"\xff\xfe\x00\x1b[2J" + bytes(range(128, 256)) + b"\r\n\r\n"
    reply = exchange(server.address, garbage)
    assert reply.status_line == b"HTTP/1.1 400 Bad Request"
    assert exchange(server.address, get()).status_line == b"HTTP/1.1 200 OK"
    time.sleep(0.1)
    garbage_line = server.output().splitlines()[1]
    assert garbage_line.startswith("[Client (") and "\ufffd" in garbage_line and "\x1b" not in garbage_line


def test_empty_connection_gets_no_reply_and_at_most_one_log_line(start_server, any_mode):
    server = start_server(any_mode)
    before = server.output().count("\n")
    with connect(server.address) as sock:
        sock.shutdown(socket.SHUT_WR)
        raw, closed, _ = read_until_close(sock, 2.0)
    assert closed and raw == b""
    assert exchange(server.address, get()).status_line == b"HTTP/1.1 200 OK"
    time.sleep(0.1)
    assert server.output().count("\n") - before <= 2  # the empty one (at most), the GET


def test_client_resetting_mid_reply_does_not_stop_the_server(start_server, any_mode):
    server = start_server(any_mode, "--work-ms", "100")  # the reset lands while the server works
    for _ in range(5):
        sock = connect(server.address)
        sock.sendall(get())
        reset(sock)
    reply = exchange(server.address, get(), timeout=5.0)
    assert reply.status_line == b"HTTP/1.1 200 OK"
    assert server.popen.poll() is None
    assert "Traceback" not in server.errors()


def test_one_log_line_per_request_in_the_report_format(start_server, any_mode):
    server = start_server(any_mode)
    exchange(server.address, get("/logged"))
    time.sleep(0.2)
    assert re.search(r"^\[Client \('127\.0\.0\.1', \d+\) Info\] GET /logged HTTP/1\.1$", server.output(), re.MULTILINE)


def test_idle_client_is_dropped_after_ten_seconds_and_others_are_served(start_server):
    """All five modes at once, so that the ten seconds are waited once."""
    servers = [start_server(mode) for mode in ALL_MODES]
    idle = [connect(server.address, timeout=15) for server in servers]
    try:
        start = time.monotonic()
        for sock in idle:
            sock.sendall(b"GET / HT")  # an incomplete head, then silence
        results = [read_until_close(sock, 14.0) for sock in idle]
        elapsed = time.monotonic() - start
    finally:
        for sock in idle:
            sock.close()
    assert all(closed for _, closed, _ in results), results
    assert 9.5 <= elapsed <= 14.0
    for server in servers:
        assert exchange(server.address, get()).status_line == b"HTTP/1.1 200 OK"
        assert "no complete request within 10 s" in server.output()


@pytest.mark.parametrize("size", [70_000, 1_000_000], ids=["70 KB", "1 MB"])
def test_a_request_over_64_kib_gets_its_reply_and_a_clean_close_not_a_reset(start_server, any_mode, size):
    """The server reads 64 KiB, replies, then ends its side and drains the rest: no reset destroys the reply."""
    server = start_server(any_mode)
    request = get("/large")[:-2] + b"X-Padding: " + b"p" * size + b"\r\n\r\n"
    with connect(server.address, timeout=10) as sock:
        sock.sendall(request)
        raw, closed, error = read_until_close(sock, 10.0)
    reply = Reply(raw, closed)
    assert error == "" and closed, f"the connection ended with {error or 'no close'}"
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and reply.complete
    assert reply.body == request[: 64 * 1024]  # the head as far as the server reads it
    assert server.popen.poll() is None
