"""A concurrent HTTP echo server based on processes: one multiprocessing.Process per client.

Run it with `python multiprocess_server.py [--host HOST] [--port PORT] [--start-method METHOD]`;
stop it with Ctrl-C.
"""

import multiprocessing

from handler import START_METHOD, Listener, handle_client, run


def serve(listener: Listener, start_method: str) -> None:
    """Task 5. Serve each client in a new child process until listener.accept() returns None.

    For each client (conn, addr) that listener.accept() returns:
      a. start a process of `context` that runs handle_client(conn, addr);
      b. close the parent's copy of the client socket right after start(): the child has its own
         copy, and the client sees the connection close only when every copy is closed.
    When accept() returns None (SIGINT or SIGTERM), join the children that are still running,
    so that their clients get their whole replies before the server exits.
    """
    context = multiprocessing.get_context(start_method)  # fork, spawn or forkserver
    # YOUR CODE HERE
    raise NotImplementedError()


def reap_children() -> None:
    """Task 6. Reap the children that have finished.

    The listener calls this each time a child process exits. A finished child stays a zombie
    until its parent collects its exit status; multiprocessing.active_children() joins every
    child that has finished (and returns the ones still running).
    """
    # YOUR CODE HERE
    raise NotImplementedError()


if __name__ == "__main__":
    run(serve, __doc__, on_child_exit=reap_children, options=(START_METHOD,))
