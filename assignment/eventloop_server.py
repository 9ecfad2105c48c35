"""A concurrent HTTP echo server based on an event loop: one thread, non-blocking sockets, selectors.

Run it with `python eventloop_server.py [--host HOST] [--port PORT]`; stop it with Ctrl-C.
An optional part: one thread serves every client, switching between them whenever one would block.
"""

import heapq
import selectors
import socket
import time

from handler import (
    DRAIN_SECONDS,
    HEAD_END,
    IDLE_TIMEOUT,
    MAX_REQUEST,
    Address,
    Listener,
    build_reply,
    describe,
    do_work,
    log,
    log_request,
    run,
    unread,
    work_setting,
)


class Client:
    """One connection's state: what has been read, what is left to send, and when to give up."""

    def __init__(self, conn: socket.socket, addr: Address):
        conn.setblocking(False)
        self.conn, self.addr = conn, addr
        self.request = bytearray()  # what has been read so far
        self.reply = b""  # what is left to send
        self.deadline = time.monotonic() + IDLE_TIMEOUT  # silent until then: dropped
        self.draining = False  # replied, but the client sent more than was read: read the rest, then close


def on_readable(client: Client) -> bool:
    """Task 9 (optional). The client's socket has data (or end-of-file): read it without blocking.

    Call client.conn.recv() once: it returns what has arrived, and never blocks here. b"" means the
    client closed its side. Add what came to client.request, and push client.deadline back by
    IDLE_TIMEOUT. Return True when the request is complete (client.request holds HEAD_END, or
    MAX_REQUEST bytes, or the client closed its side), False to wait for more.
    """
    # YOUR CODE HERE
    raise NotImplementedError()


def on_writable(client: Client) -> bool:
    """Task 10 (optional). The client's socket can take data: send what is left without blocking.

    Call client.conn.send(client.reply) once: it may take only part of it, and returns how much it
    took. Keep the rest in client.reply. Return True once everything is sent.
    """
    # YOUR CODE HERE
    raise NotImplementedError()


class EventLoop:
    """The event loop (given): wait until some socket is ready, then do only what cannot block."""

    def __init__(self, listener: Listener):
        self.listener = listener
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener.sock, selectors.EVENT_READ)
        self.selector.register(listener.wakeup, selectors.EVENT_READ)
        self.clients: dict[socket.socket, Client] = {}
        self.timers: list[tuple[float, int, Client]] = []  # replies held back by --work-ms io, by due time
        self.work, self.kind = work_setting()

    def run(self) -> None:
        try:
            while not self.listener.stopping or self.clients:
                self.step()
        finally:  # however the loop ends, no connection is left open
            for client in list(self.clients.values()):
                self.close(client)
            self.selector.close()

    def step(self) -> None:
        due = [c.deadline for c in self.clients.values()] + [t for t, _, _ in self.timers[:1]]
        for key, events in self.selector.select(max(0.0, min(due) - time.monotonic()) if due else None):
            if key.fileobj is self.listener.wakeup:
                self.listener.woken()
                if self.listener.stopping and self.selector.get_map().get(self.listener.sock) is not None:
                    self.selector.unregister(self.listener.sock)  # stop accepting; finish the clients we have
            elif key.fileobj is self.listener.sock:
                if (accepted := self.listener.accept_ready()) is not None:
                    client = Client(*accepted)
                    self.clients[client.conn] = client
                    self.selector.register(client.conn, selectors.EVENT_READ, client)
            else:
                self.serve_client(key.data, events)
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            self.reply(heapq.heappop(self.timers)[2])
        for client in [c for c in self.clients.values() if c.deadline <= now]:
            self.close(client, "" if client.draining else f"no complete request within {IDLE_TIMEOUT:g} s: closing")

    def serve_client(self, client: Client, events: int) -> None:
        try:
            if client.draining:
                if not client.conn.recv(65536):  # the client closed: now closing makes no reset
                    self.close(client)
            elif events & selectors.EVENT_READ:
                if on_readable(client):
                    self.selector.unregister(client.conn)
                    self.request_done(client)
            elif on_writable(client):
                self.finish(client)
        except ConnectionError as exc:
            self.close(client, f"connection lost ({type(exc).__name__})")
        except Exception as exc:  # Task 9 or 10 not written yet, or a bug there: this client only
            self.close(client, describe(exc))

    def request_done(self, client: Client) -> None:
        if not client.request:
            self.close(client)  # closed without a request: nobody to reply to
            return
        log_request(client.addr, bytes(client.request))
        if self.kind == "io" and self.work > 0:  # wait without blocking the others
            client.deadline = float("inf")
            heapq.heappush(self.timers, (time.monotonic() + self.work, id(client), client))
            return
        do_work()  # CPU work blocks the loop: the price of a single thread
        self.reply(client)

    def reply(self, client: Client) -> None:
        client.reply = build_reply(bytes(client.request))
        client.deadline = time.monotonic() + IDLE_TIMEOUT
        self.selector.register(client.conn, selectors.EVENT_WRITE, client)

    def finish(self, client: Client) -> None:
        """The reply is sent. If the client sent more than was read, closing now would reset the
        connection: end our side, and read the rest as it comes (DRAIN_SECONDS at most), then close."""
        if not unread(client.conn):
            self.close(client)
            return
        client.conn.shutdown(socket.SHUT_WR)
        client.draining, client.deadline = True, time.monotonic() + DRAIN_SECONDS
        self.selector.modify(client.conn, selectors.EVENT_READ, client)

    def close(self, client: Client, why: str = "") -> None:
        if why:
            log(f"Client {client.addr}", "Error", why)
        if self.selector.get_map() is not None and self.selector.get_map().get(client.conn) is not None:
            self.selector.unregister(client.conn)
        self.clients.pop(client.conn, None)
        client.conn.close()


def serve(listener: Listener) -> None:
    """Serve every client from one thread, with the event loop above, until SIGINT or SIGTERM."""
    EventLoop(listener).run()


if __name__ == "__main__":
    run(serve, __doc__)
