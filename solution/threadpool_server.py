"""A concurrent HTTP echo server based on a thread pool: a fixed number of worker threads.

Run it with `python threadpool_server.py [--host HOST] [--port PORT] [--workers N]`; stop it with Ctrl-C.
An optional part: compare it with multithread_server.py under a burst of clients.
"""

from concurrent.futures import ThreadPoolExecutor

from handler import Listener, handle_client, positive, run

WORKERS = ("--workers", {"type": positive, "default": 8, "help": "worker threads in the pool (default: %(default)s)"})


def serve(listener: Listener, workers: int) -> None:
    """Task 8 (optional). Serve the clients with the pool's `workers` threads.

    The pool and the accept loop are given. Inside the loop, hand the client to the pool and go
    straight back to accept(): the clients that find every worker busy wait in the pool's queue,
    so the number of threads never grows past `workers`, however many clients arrive at once.

    After the loop (the server was asked to stop), wait: when serve() returns, every client the
    pool took, queued ones included, has had its whole reply, and no worker is left.
    """
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="worker")
    while (client := listener.accept()) is not None:
        conn, addr = client
        ### BEGIN SOLUTION
        pool.submit(handle_client, conn, addr)
        ### END SOLUTION
    ### BEGIN SOLUTION
    pool.shutdown(wait=True)  # every queued client is served first
    ### END SOLUTION


if __name__ == "__main__":
    run(serve, __doc__, options=(WORKERS,))
