"""An iterative HTTP echo server: it serves one client at a time, in the main thread.

Run it with `python single_server.py [--host HOST] [--port PORT]`; stop it with Ctrl-C.
"""

from handler import Listener, handle_client, run


def serve(listener: Listener) -> None:
    """Task 4. Serve clients one after another until listener.accept() returns None.

    listener.accept() waits for the next client and returns it as (conn, addr); it returns None
    once the server is asked to stop (SIGINT or SIGTERM). Call handle_client(conn, addr) for each
    client right here: no thread, no process. Meanwhile, the next clients wait in the listen queue.
    """
    # YOUR CODE HERE
    raise NotImplementedError()


if __name__ == "__main__":
    run(serve, __doc__)
