"""A concurrent HTTP echo server based on a thread pool: a fixed number of worker threads.

Run it with `python threadpool_server.py [--host HOST] [--port PORT] [--workers N]`; stop it with Ctrl-C.
An optional part: compare it with multithread_server.py under a burst of clients.
"""

from concurrent.futures import ThreadPoolExecutor

from handler import Listener, handle_client, positive, run

WORKERS = ("--workers", {"type": positive, "default": 8, "help": "worker threads in the pool (default: %(default)s)"})


def serve(listener: Listener, workers: int) -> None:
    """Task 8 (optional). Serve clients with a pool of `workers` threads until listener.accept() returns None.

    Make a concurrent.futures.ThreadPoolExecutor with max_workers=workers (as a `with` block). The
    accept loop only hands each client (conn, addr) to the pool: pool.submit(handle_client, conn,
    addr). The pool's queue holds the clients that wait for a free worker, so the number of threads
    never grows past `workers`, however many clients arrive at once. When accept() returns None
    (SIGINT or SIGTERM), shut the pool down and wait for it (leaving the `with` block does): the
    queued clients are served first.
    """
    # YOUR CODE HERE
    raise NotImplementedError()


if __name__ == "__main__":
    run(serve, __doc__, options=(WORKERS,))
