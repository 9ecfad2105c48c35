"""A concurrent HTTP echo server based on processes: one multiprocessing.Process per client.

Run it with `python multiprocess_server.py [--host HOST] [--port PORT] [--start-method METHOD]`;
stop it with Ctrl-C.
"""

import multiprocessing

from handler import START_METHOD, Listener, handle_client, run


def serve(listener: Listener, start_method: str) -> None:
    """Task 5. Serve each client in a child process of its own, started by `context`.

    The accept loop is given. Inside it, hand the client to a new child and go straight back to
    accept(): the server must never wait for one client before taking the next. Two outcomes must
    hold: the client sees the end of its reply as soon as the child has sent it (a client sees the
    connection close only when every copy of its socket is closed, and a child starts with copies of
    the parent's sockets); and under --start-method spawn or forkserver, the children really are
    started that way.

    After the loop (the server was asked to stop), wait: when serve() returns, no child may still
    be running, and every client that was being served has had its whole reply.
    """
    context = multiprocessing.get_context(start_method)  # fork, spawn or forkserver
    while (client := listener.accept()) is not None:
        conn, addr = client
        ### BEGIN SOLUTION
        context.Process(target=handle_client, args=(conn, addr)).start()
        conn.close()  # The parent closes its copy of the client socket (important!)
        ### END SOLUTION
    ### BEGIN SOLUTION
    for child in multiprocessing.active_children():
        child.join()
    ### END SOLUTION


def reap_children() -> None:
    """Task 6. Collect the children that have finished.

    The listener calls this each time a child process exits. Until its parent collects its exit
    status, a finished child stays in the process table as a zombie. multiprocessing collects the
    finished ones itself each time a new Process starts, and at exit; but the children of the last
    clients before a quiet spell would wait as zombies until the next client comes. Collect the
    finished ones now, through multiprocessing (an os.waitpid() behind its back would leave its
    Process objects, and a descriptor each, behind), and do not wait for the ones still running.
    """
    ### BEGIN SOLUTION
    multiprocessing.active_children()  # joins, and so reaps, the children that have exited
    ### END SOLUTION


if __name__ == "__main__":
    run(serve, __doc__, on_child_exit=reap_children, options=(START_METHOD,))
