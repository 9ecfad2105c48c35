"""A concurrent HTTP echo server based on threads: one threading.Thread per client.

Run it with `python multithread_server.py [--host HOST] [--port PORT]`; stop it with Ctrl-C.
"""

import threading

from handler import Listener, handle_client, run


def serve(listener: Listener) -> None:
    """Task 7. Serve each client in a new thread until listener.accept() returns None.

    For each client (conn, addr) that listener.accept() returns, start a thread that runs
    handle_client(conn, addr), and go straight back to accept(). Keep no list of the threads:
    a finished thread should be forgotten. When accept() returns None (SIGINT or SIGTERM), join
    every thread still running (threading.enumerate() lists them, the main thread included),
    so that their clients get their whole replies before the server exits.
    """
    ### BEGIN SOLUTION
    while (client := listener.accept()) is not None:
        conn, addr = client
        threading.Thread(target=handle_client, args=(conn, addr), name=f"client {addr}").start()
    for worker in threading.enumerate():
        if worker is not threading.current_thread():
            worker.join()
    ### END SOLUTION


if __name__ == "__main__":
    run(serve, __doc__)
