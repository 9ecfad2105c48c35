"""A concurrent HTTP echo server based on threads: one threading.Thread per client.

Run it with `python multithread_server.py [--host HOST] [--port PORT]`; stop it with Ctrl-C.
"""

import threading

from handler import Listener, handle_client, run


def serve(listener: Listener) -> None:
    """Task 7. Serve each client in a thread of its own.

    The accept loop is given, and so is the list of the threads still running (the finished ones
    are dropped from it, as socketserver does, so that it does not grow with every client). Inside
    the loop, hand the client to a new thread, keep it in the list, and go straight back to
    accept(): the server must never wait for one client before taking the next.

    After the loop (the server was asked to stop), wait: when serve() returns, every client that
    was being served has had its whole reply.
    """
    threads: list[threading.Thread] = []
    while (client := listener.accept()) is not None:
        conn, addr = client
        threads = [thread for thread in threads if thread.is_alive()]
        # YOUR CODE HERE
        raise NotImplementedError()
    # YOUR CODE HERE
    raise NotImplementedError()


if __name__ == "__main__":
    run(serve, __doc__)
