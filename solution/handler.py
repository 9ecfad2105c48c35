"""The request handler shared by every server, and the start-up code they share.

Every server mode calls handle_client(conn, addr) for each client: it reads the request,
replies with an HTTP/1.1 message that echoes the request back, and closes the connection.
The servers differ only in how they dispatch clients to it (see *_server.py).

You write Tasks 1 to 3 below. Everything under "Provided code" is given: argument parsing,
the listening socket, the ready line, signal handling and the workload knob.
"""

import argparse
import contextlib
import multiprocessing
import os
import re
import selectors
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

Address = tuple  # (host, port) of a client, as accept() returns it

HEAD_END = b"\r\n\r\n"  # a blank line ends the head of an HTTP request
MAX_REQUEST = 64 * 1024  # read at most this many bytes of a request
IDLE_TIMEOUT = float(os.environ.get("CONCURRENCY_LAB_IDLE_TIMEOUT", "10"))  # seconds a client may stay silent


def read_request(conn: socket.socket) -> bytes:
    """Task 1. Read the head of the request from conn and return the bytes read.

    recv() returns whatever has arrived so far: one call may give you only part of the head.
    Keep receiving until one of these happens:
      - the bytes read so far contain HEAD_END (the blank line that ends the head),
      - recv() returns b"" (the client closed its side),
      - you have read MAX_REQUEST bytes.
    Return everything read (b"" when the client closed without sending anything).
    """
    ### BEGIN SOLUTION
    request = bytearray()
    while HEAD_END not in request and len(request) < MAX_REQUEST:
        chunk = conn.recv(MAX_REQUEST - len(request))
        if not chunk:  # the client closed its side
            break
        request += chunk
    return bytes(request)
    ### END SOLUTION


def build_reply(request: bytes) -> bytes:
    """Task 2. Return the whole HTTP reply to send for this request, as bytes.

    Status line, headers, a blank line, then the request itself as the body. Every line of the
    head ends with CRLF ("\\r\\n"), not just "\\n":

        HTTP/1.1 200 OK
        Content-Type: text/html
        Content-Length: <len(request)>
        Connection: close
        <blank line>
        <the request bytes>

    When is_request_line(request_line(request)) is false, the status line is
    "HTTP/1.1 400 Bad Request" instead, with the same headers and body.
    """
    ### BEGIN SOLUTION
    status = "200 OK" if is_request_line(request_line(request)) else "400 Bad Request"
    head = [
        f"HTTP/1.1 {status}",
        "Content-Type: text/html",
        f"Content-Length: {len(request)}",
        "Connection: close",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + request  # a blank line ends the head
    ### END SOLUTION


def handle_client(conn: socket.socket, addr: Address) -> None:
    """Task 3. Serve one client: read its request, reply, and let the connection close.

    The `with` line is given: it closes the socket however the block ends (cleanly, even when the
    client sent more than MAX_REQUEST), and logs an error of this client (a timeout, a reset
    connection, a bug) in one line instead of crashing the server. Inside it, these must hold:
      - a client that stays silent is given up after IDLE_TIMEOUT seconds: it must not hold the
        server, a process or a thread forever;
      - a client that closes without sending anything gets no reply (there is nobody to read it);
      - every request is logged with log_request(), and the --work-ms work (do_work()) is done
        before the reply;
      - the client gets the whole of build_reply(request), however large: send() returns how
        many bytes it wrote, which may be fewer than it was given.
    """
    with closed_cleanly(conn), client_errors_logged(addr):
        ### BEGIN SOLUTION
        conn.settimeout(IDLE_TIMEOUT)
        request = read_request(conn)
        if not request:
            return
        log_request(addr, request)
        do_work()
        conn.sendall(build_reply(request))
        ### END SOLUTION


# ---------------------------------------------------------------------------------------------
# Provided code: you do not need to change anything below.
# ---------------------------------------------------------------------------------------------

REQUEST_LINE = re.compile(rb"[A-Za-z]+ [^ \r\n]+ HTTP/1\.[0-9]")
DRAIN_SECONDS = 2.0  # how long to read what a client sent beyond what was read, before closing
WORK_ENV = "CONCURRENCY_LAB_WORK"  # "MS KIND", set by --work-ms/--work-kind; children inherit it
SERVER_ENV = "CONCURRENCY_LAB_SERVER"  # the server's pid, set by run(); children inherit it
TIMELINE_ENV = "CONCURRENCY_LAB_TIMELINE"  # the file set by --timeline; children inherit it
OFF_CPU = 0.002  # seconds without progress in do_work's computing: the thread was not running meanwhile

# A terminal's Ctrl-C signals the whole process group, child processes included. A child started by
# spawn or forkserver imports this module afresh (the fork server too, whose children inherit from
# it): there it ignores SIGINT, so that its client gets the whole reply; the server decides the rest.
if os.environ.get(SERVER_ENV, str(os.getpid())) != str(os.getpid()):
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def request_line(request: bytes) -> bytes:
    """The first line of a request, without its line ending."""
    return re.split(rb"\r?\n", request, maxsplit=1)[0]


def is_request_line(line: bytes) -> bool:
    """Whether line has the form METHOD SP TARGET SP HTTP/1.x, as in b"GET / HTTP/1.1"."""
    return REQUEST_LINE.fullmatch(line) is not None


def log(who: str, level: str, message: str) -> None:
    """Write one log line to stdout, in one write, so lines of concurrent clients never mix."""
    sys.stdout.write(f"[{who} {level}] {message}\n")
    sys.stdout.flush()


def log_request(addr: Address, request: bytes) -> None:
    """Log the request line of a client's request, as `[Client ('127.0.0.1', 62005) Info] GET / HTTP/1.1`.

    Bytes that are not UTF-8, and control characters, show as \ufffd: a log line stays one readable line.
    """
    timeline("request", addr)
    text = request_line(request).decode("utf-8", errors="replace")
    log(f"Client {addr}", "Info", "".join(c if c.isprintable() else "\ufffd" for c in text))


def timeline(event: str, addr: Address | None, **details: object) -> None:
    """With --timeline FILE, append one line to FILE: an event of a client (accept, start, request, work,
    close), the client's port, the process and thread it happened in, and when (time.time(): one clock for
    every process). Each line is one write in append mode, so lines of concurrent processes never mix.
    Without --timeline, nothing. `python -m autograder compare --timeline` draws these lines."""
    path = os.environ.get(TIMELINE_ENV)
    if not path:
        return
    import json
    import threading

    port = addr[1] if addr else None
    line = {
        "event": event,
        "client": port,
        "pid": os.getpid(),
        "thread": threading.get_native_id(),
        "time": time.time(),
    }
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(line | details) + "\n").encode())
    finally:
        os.close(fd)


def peer(conn: socket.socket) -> Address | None:
    """The client's address, or None once the connection is gone."""
    try:
        return conn.getpeername()
    except OSError:
        return None


@contextlib.contextmanager
def closed_cleanly(conn: socket.socket) -> Iterator[socket.socket]:
    """Close conn when the block ends. Closing a socket that still holds unread bytes (a request
    over MAX_REQUEST) makes the system reset the connection, which can destroy the reply on its
    way: so first end our side (the client sees the reply end), then read and drop the rest, for
    DRAIN_SECONDS at most."""
    client = peer(conn)
    timeline("start", client)  # this process and thread took the client
    try:
        yield conn
    finally:
        with contextlib.suppress(OSError):
            if unread(conn):
                conn.shutdown(socket.SHUT_WR)
                drain(conn, time.monotonic() + DRAIN_SECONDS)
        timeline("close", client)  # written before the client can see the end of the connection
        conn.close()


def unread(conn: socket.socket) -> bool:
    """Whether bytes the client sent are waiting, unread, in conn (without reading or waiting: a socket
    with a timeout would first wait for data, so it is made non-blocking for the look)."""
    timeout = conn.gettimeout()
    conn.setblocking(False)
    try:
        return bool(conn.recv(1, socket.MSG_PEEK))
    except (BlockingIOError, InterruptedError):
        return False
    finally:
        conn.settimeout(timeout)


def drain(conn: socket.socket, deadline: float) -> bool:
    """Read and drop what the client sends until it closes (True) or deadline passes (False)."""
    while (left := deadline - time.monotonic()) > 0:
        conn.settimeout(left)
        try:
            if not conn.recv(65536):
                return True
        except TimeoutError:
            return False
    return False


@contextlib.contextmanager
def client_errors_logged(addr: Address) -> Iterator[None]:
    """Log an error of one client in one line and go on: one client never stops the server."""
    try:
        yield
    except TimeoutError:
        log(f"Client {addr}", "Error", f"no complete request within {IDLE_TIMEOUT:g} s: closing")
    except ConnectionError as exc:  # BrokenPipeError, ConnectionResetError, ...
        log(f"Client {addr}", "Error", f"connection lost ({type(exc).__name__})")
    except Exception as exc:  # not implemented yet, or a bug: say where, in one line
        log(f"Client {addr}", "Error", describe(exc))


def describe(exc: Exception) -> str:
    """An error of one client, in one line that says where it happened."""
    if isinstance(exc, NotImplementedError):
        return f"{not_implemented(exc)}: closing the connection"
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{type(exc).__name__}: {exc} ({Path(frame.filename).name}:{frame.lineno} in {frame.name}())"


def not_implemented(exc: NotImplementedError) -> str:
    """Which function of which file raised exc, as "read_request() in handler.py is not implemented yet"."""
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{frame.name}() in {Path(frame.filename).name} is not implemented yet"


def do_work() -> None:
    """Spend the per-request work set by --work-ms and --work-kind (none by default).

    io: sleep, as a server waiting for a database or a disk would; other clients can run meanwhile.
    cpu: compute for that much CPU time of this thread; under the GIL, threads of one process
    take turns at it, while processes run side by side on several cores.
    """
    seconds, kind = work_setting()
    if seconds <= 0:
        return
    began = time.time()
    if kind == "io":
        time.sleep(seconds)
        timeline("work", None, began=began, ran=[])
        return
    ran = [[began, began]]  # the stretches of time in which this thread computed, for the timeline
    deadline = time.thread_time() + seconds
    while time.thread_time() < deadline:
        sum(i * i for i in range(1000))
        now = time.time()
        if now - ran[-1][1] > OFF_CPU:  # it had stopped: another thread or process had the core
            ran.append([now, now])
        ran[-1][1] = now
    timeline("work", None, began=began, ran=ran)


def work_setting() -> tuple[float, str]:
    """(seconds, kind) of the per-request work that --work-ms and --work-kind set."""
    ms, kind = os.environ.get(WORK_ENV, "0 io").split()
    return float(ms) / 1000, kind


class Listener:
    """The listening socket of a server, and a clean way to stop it.

    accept() waits for the next client and returns (conn, addr). It returns None once SIGINT or
    SIGTERM has arrived: the accept loop then ends, and the server finishes its clients and exits.
    A second SIGINT or SIGTERM ends the server at once, its child processes included.
    If on_child_exit is given, it is called (from accept(), never from a signal handler) each
    time a child process exits, so that the server can reap it.
    """

    def __init__(self, host: str, port: int, on_child_exit: Callable[[], None] | None = None):
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        # Without SO_REUSEADDR a restart within a minute fails: the old connections linger in TIME_WAIT.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
            self.sock.listen(socket.SOMAXCONN)  # the accept queue: clients wait here meanwhile
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.stopping = False
        self.on_child_exit = on_child_exit

        # A signal writes a byte to _wake_w, which wakes the select() in accept() (or in an event
        # loop that watches self.wakeup).
        self.wakeup, self._wake_w = socket.socketpair()
        self.wakeup.setblocking(False)
        self._wake_w.setblocking(False)
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        # Set both explicitly: a server started in the background by a script inherits SIGINT ignored.
        # The handlers replaced are put back by close().
        self._replaced = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGTERM, self._stop)
        if on_child_exit is not None:
            self._replaced[signal.SIGCHLD] = signal.getsignal(signal.SIGCHLD)
            signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # only to wake select()
        # A child made by fork starts with copies of these sockets: it serves one client, so it closes them.
        os.register_at_fork(after_in_child=self._in_forked_child)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.sock, selectors.EVENT_READ)
        self._selector.register(self.wakeup, selectors.EVENT_READ)

    def _in_forked_child(self) -> None:
        """In a child made by fork: close the copies of the listening socket and of the wake-up pair
        (only the server accepts), and ignore SIGINT as a spawned child does (the server decides)."""
        if self.sock.fileno() == -1:
            return  # closed already: this child was forked after the listener was closed
        signal.set_wakeup_fd(-1)
        self._selector.close()
        for sock in (self.sock, self.wakeup, self._wake_w):
            sock.close()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def _stop(self, signum: int, frame: object) -> None:
        if self.stopping:  # a second Ctrl-C (or SIGTERM): end everything now, children included
            children = multiprocessing.active_children()
            for child in children:
                child.kill()
            for child in children:
                child.join(1.0)  # collected: gone before the server is
            os._exit(128 + signum)
        self.stopping = True

    def accept(self) -> tuple[socket.socket, Address] | None:
        """The next client as (conn, addr), or None once the server is asked to stop."""
        while not self.stopping:
            events = self._selector.select()
            if any(key.fileobj is self.wakeup for key, _ in events):
                self.woken()
                continue  # look at self.stopping again before accepting anyone
            client = self.accept_ready()
            if client is not None:
                client[0].setblocking(True)
                return client
        return None

    def woken(self) -> None:
        """Read what signals wrote to self.wakeup, and call on_child_exit if a child exited."""
        signals = b""
        with contextlib.suppress(BlockingIOError):
            signals = self.wakeup.recv(4096)  # one byte per signal: its number
        if signal.SIGCHLD in signals and self.on_child_exit is not None:
            self.on_child_exit()

    def accept_ready(self) -> tuple[socket.socket, Address] | None:
        """A client waiting in the listen queue, or None if there is none (the socket never blocks)."""
        try:
            client = self.sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return None  # nobody there, or the client went away before we took it
        except OSError as exc:  # e.g. too many open files: say so, let some clients finish
            log("Server", "Error", f"accept() failed: {exc}")
            time.sleep(0.1)
            return None
        timeline("accept", client[1])
        return client

    def close(self) -> None:
        """Close the sockets, and put back the signal handlers the listener replaced."""
        signal.set_wakeup_fd(-1)
        self._selector.close()
        for sock in (self.sock, self.wakeup, self._wake_w):
            sock.close()
        for signum, handler in self._replaced.items():
            signal.signal(signum, handler)


def parse_args(description: str, options: tuple[tuple[str, dict], ...]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8890, help="port to listen on; 0 lets the system choose (default: %(default)s)"
    )
    parser.add_argument(
        "--work-ms", type=float, default=0.0, metavar="N", help="work per request, in milliseconds (default: none)"
    )
    parser.add_argument(
        "--work-kind", choices=("io", "cpu"), default="io", help="io: sleep; cpu: compute (default: %(default)s)"
    )
    parser.add_argument(
        "--timeline",
        metavar="FILE",
        help="append a line per event of each client to FILE: when it was accepted, started, served, closed, "
        "by which process and thread (for `python -m autograder compare --timeline`)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=IDLE_TIMEOUT,
        metavar="S",
        help="seconds a client may stay silent before it is let go (default: %(default)g)",
    )
    for flag, settings in options:
        parser.add_argument(flag, **settings)
    args = parser.parse_args()
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, not {args.port}")
    if args.work_ms < 0:
        parser.error(f"--work-ms must not be negative, not {args.work_ms:g}")
    if not args.idle_timeout > 0:
        parser.error(f"--idle-timeout must be positive, not {args.idle_timeout:g}")
    return args


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return int(text)


START_METHODS = multiprocessing.get_all_start_methods()  # the first is the platform's default
START_METHOD = (
    "--start-method",
    {"choices": START_METHODS, "default": START_METHODS[0], "help": "how child processes start (default: %(default)s)"},
)


def run(
    serve: Callable[..., None],
    description: str,
    on_child_exit: Callable[[], None] | None = None,
    options: tuple[tuple[str, dict], ...] = (),
) -> None:
    """Parse the command line, listen, print the ready line, then call serve(listener, ...).

    options: command-line options of this server only, as (flag, argparse settings); serve() gets
    their values as keyword arguments (--start-method as start_method=...). on_child_exit: see Listener.
    """
    args = parse_args(description.strip().splitlines()[0], options)
    names = [flag.lstrip("-").replace("-", "_") for flag, _ in options]
    extras = {name: getattr(args, name) for name in names}
    global IDLE_TIMEOUT
    IDLE_TIMEOUT = args.idle_timeout
    os.environ["CONCURRENCY_LAB_IDLE_TIMEOUT"] = f"{args.idle_timeout:g}"  # children that import this module anew
    os.environ[WORK_ENV] = f"{args.work_ms:g} {args.work_kind}"
    os.environ[SERVER_ENV] = str(os.getpid())
    if args.timeline:  # children inherit it, those started by spawn or forkserver included
        os.environ[TIMELINE_ENV] = os.path.abspath(args.timeline)
    try:
        listener = Listener(args.host, args.port, on_child_exit)
    except OSError as exc:
        sys.exit(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    print(f"Serving on {listener.host}:{listener.port}", flush=True)
    try:
        serve(listener, **extras)
    except NotImplementedError as exc:  # an unfilled skeleton: close every connection, say why
        reason = not_implemented(exc)
        traceback.clear_frames(exc.__traceback__)  # closes the connection serve() was holding
        del exc
        log("Server", "Error", f"{reason}: the server closes every connection")
        listener.on_child_exit = None
        while (client := listener.accept()) is not None:
            client[0].close()
            log("Server", "Error", f"{reason}: closed the connection from {client[1]}")
    finally:
        listener.close()
    log("Server", "Info", "stopped")
    # serve() has returned: the process ends here and now, as a C program does when main() returns. (The
    # interpreter would otherwise wait on its own for the threads and child processes that serve() left.)
    sys.stderr.flush()
    os._exit(0)
