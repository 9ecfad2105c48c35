"""An iterative HTTP echo server: it serves one client at a time, in the main thread.

Run it with `python single_server.py [--host HOST] [--port PORT]`; stop it with Ctrl-C.
"""

from handler import Listener, handle_client, run


def serve(listener: Listener) -> None:
    """Task 4. Serve each client that listener.accept() returns, one after another.

    The accept loop is given: listener.accept() waits for the next client and returns it as
    (conn, addr), or None once the server is asked to stop (SIGINT or SIGTERM). This server has no
    thread and no process of its own: while one client is being served, the next ones wait in the
    listen queue. That loop is the whole server.
    """
    while (client := listener.accept()) is not None:
        conn, addr = client
        ### BEGIN SOLUTION
        handle_client(conn, addr)
        ### END SOLUTION


if __name__ == "__main__":
    run(serve, __doc__)
