"""The server as a process: command line, ready line, signals, restart, and the address it listens on."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from autograder import ALL_MODES, SOLUTION
from autograder.client import connect, exchange, get, read_until_close
from autograder.harness import Server


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_lets_the_client_in_flight_finish_then_exits_0(start_server, any_mode, signum):
    server = start_server(any_mode)
    request = get("/in-flight")
    with connect(server.address) as sock:
        sock.sendall(request[:10])
        time.sleep(0.3)  # the server has taken the client and waits for the rest
        server.send_signal(signum)
        time.sleep(0.3)
        sock.sendall(request[10:])
        raw, closed, error = read_until_close(sock, 5.0)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(request) and closed and not error
    assert server.wait(15) == 0
    assert "Traceback" not in server.errors()
    assert server.output().rstrip().endswith("[Server Info] stopped")
    time.sleep(0.5)  # multiprocessing's helpers (resource tracker) go once their parent has gone
    assert server.kill() == []


def test_a_server_started_in_the_background_by_a_script_still_stops_on_sigint(tmp_path):
    """A non-interactive shell starts background jobs with SIGINT ignored: the server must set its handler."""
    script = SOLUTION / "single_server.py"
    shell = f"{sys.executable} -u {script} --port 0 > {tmp_path}/out 2>&1 & echo $!; wait"
    with subprocess.Popen(["sh", "-c", shell], stdout=subprocess.PIPE, text=True, start_new_session=True) as sh:
        pid = int(sh.stdout.readline())
        time.sleep(1.0)
        subprocess.run(["kill", "-INT", str(pid)], check=True)
        assert sh.wait(15) == 0
    assert "[Server Info] stopped" in (tmp_path / "out").read_text()


def test_restart_on_the_same_port_right_after_shutdown_succeeds(start_server, mode):
    first = start_server(mode)
    for _ in range(3):  # the server closes first, so these connections linger in TIME_WAIT
        assert exchange(first.address, get()).closed
    assert first.stop() == 0
    second = start_server(mode, "--port", str(first.port))
    assert second.port == first.port
    assert exchange(second.address, get()).status_line == b"HTTP/1.1 200 OK"


def test_it_listens_only_on_the_host_it_was_given(start_server, mode):
    server = start_server(mode)
    listening = [c.laddr for c in server.process().net_connections("inet") if c.status == "LISTEN"]
    assert listening == [("127.0.0.1", server.port)]
    assert server.host == "127.0.0.1"


def test_port_already_in_use_is_a_clear_error(start_server, tmp_path):
    first = start_server("single")
    second = Server(SOLUTION / "single_server.py", ["--port", str(first.port)], log_dir=tmp_path)
    with pytest.raises(Exception, match="exited with status 1"):
        second.start()
    assert f"error: cannot listen on 127.0.0.1:{first.port}: Address already in use" in second.errors()
    assert "Traceback" not in second.errors()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "--port must be between 0 and 65535"),
        (["--port", "http"], "invalid int value"),
        (["--work-ms", "-5"], "--work-ms must not be negative"),
        (["--start-method", "teleport"], "invalid choice"),
    ],
)
def test_bad_arguments_are_usage_errors(args, message):
    run = subprocess.run(
        [sys.executable, SOLUTION / "multiprocess_server.py", *args], capture_output=True, text=True, timeout=10
    )
    assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("kind", ["io", "cpu"])
def test_work_knob_makes_each_request_take_that_long(start_server, mode, kind):
    server = start_server(mode, "--work-ms", "300", "--work-kind", kind)
    reply = exchange(server.address, get())
    assert reply.status_line == b"HTTP/1.1 200 OK" and reply.seconds >= 0.3


def test_help_names_every_option():
    run = subprocess.run(
        [sys.executable, SOLUTION / "multiprocess_server.py", "--help"], capture_output=True, text=True
    )
    assert run.returncode == 0
    for option in ("--host", "--port", "--start-method", "--work-ms", "--work-kind"):
        assert option in run.stdout
    assert "one multiprocessing.Process per client" in " ".join(run.stdout.split())


def test_idle_connection_held_during_shutdown_is_closed_and_the_server_exits_within_15_s(start_server):
    """All three modes at once, so that the idle timeout is waited once."""
    servers = [start_server(mode) for mode in ALL_MODES]
    idle = [connect(server.address, timeout=15) for server in servers]
    try:
        time.sleep(0.3)
        start = time.monotonic()
        for server in servers:
            server.send_signal(signal.SIGTERM)
        results = [read_until_close(sock, 14.0) for sock in idle]
    finally:
        for sock in idle:
            sock.close()
    assert all(closed and raw == b"" for raw, closed, _ in results), results
    assert [server.wait(max(0.0, 15 - (time.monotonic() - start))) for server in servers] == [0] * len(ALL_MODES)


def logged(server: Server, path: str, timeout: float = 10.0) -> bool:
    """Whether the server logged the request for path within timeout seconds (its client is being served)."""
    deadline = time.monotonic() + timeout
    while f"GET {path} HTTP/1.1" not in server.output():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_ctrl_c_to_the_process_group_lets_each_child_finish_its_client(start_server, method):
    """A terminal's Ctrl-C signals every process of the group: children of every start method finish."""
    server = start_server("multiprocess", "--start-method", method, "--work-ms", "500")
    with connect(server.address, timeout=10) as sock:
        sock.sendall(get("/in-flight"))
        assert logged(server, "/in-flight")
        os.killpg(server.pid, signal.SIGINT)
        raw, closed, error = read_until_close(sock, 10.0)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and closed and not error, (raw[:60], error, server.errors())
    assert server.wait(15) == 0
    assert "Traceback" not in server.errors() and "KeyboardInterrupt" not in server.errors()


@pytest.mark.parametrize("mode", ["multiprocess", "multithread"])
def test_a_second_ctrl_c_ends_the_server_and_its_children_at_once(start_server, mode):
    server = start_server(mode, "--work-ms", "20000")
    with connect(server.address, timeout=10) as sock:
        sock.sendall(get("/slow"))
        assert logged(server, "/slow")
        workers = server.workers()
        os.killpg(server.pid, signal.SIGINT)
        time.sleep(0.2)  # the first one has been handled: the server now waits for its client
        assert server.popen.poll() is None
        os.killpg(server.pid, signal.SIGINT)
        assert server.wait(5) == 128 + signal.SIGINT  # not the 20 s the client's work would take
    assert not any(p.is_running() and p.status() != "zombie" for p in workers)


def test_a_forked_child_holds_no_copy_of_the_listening_socket(start_server):
    """Only the server accepts: a child made by fork closes the listener it was born with."""
    server = start_server("multiprocess", "--start-method", "fork")
    with connect(server.address, timeout=10):
        deadline = time.monotonic() + 5
        while not server.workers() and time.monotonic() < deadline:
            time.sleep(0.05)
        (child,) = server.workers()
        listening = [c for c in child.net_connections("inet") if c.status == "LISTEN"]
        assert listening == [], listening
        assert [c for c in server.process().net_connections("inet") if c.status == "LISTEN"]


def test_closing_the_listener_puts_back_the_signal_handlers_it_replaced():
    code = (
        "import signal, sys; sys.path.insert(0, sys.argv[1]); from handler import Listener\n"
        "before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)}\n"
        "listener = Listener('127.0.0.1', 0, on_child_exit=lambda: None)\n"
        "assert signal.getsignal(signal.SIGTERM) == listener._stop\n"
        "listener.close()\n"
        "after = {s: signal.getsignal(s) for s in before}\n"
        "assert after == before, (before, after)\n"
        "print('restored')\n"
    )
    run = subprocess.run([sys.executable, "-c", code, str(SOLUTION)], capture_output=True, text=True, timeout=30)
    assert run.stdout.strip() == "restored", run.stderr


def test_zombies_are_the_unreaped_children_and_a_child_reaped_while_looked_at_is_none(tmp_path, monkeypatch):
    """Server.zombies() on two children of this test: one ended and never reaped, one reaped after it was
    listed (psutil then finds no such process: the hygiene check once stopped there, a grader fault)."""
    unreaped = subprocess.Popen([sys.executable, "-c", "pass"])
    reaped = subprocess.Popen([sys.executable, "-c", "pass"])
    listed = psutil.Process(reaped.pid)
    reaped.wait()
    try:
        deadline = time.monotonic() + 10
        while psutil.Process(unreaped.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the child never ended"
            time.sleep(0.02)
        server = Server(SOLUTION / "single_server.py", [], log_dir=tmp_path)  # never started: its children given
        children = [psutil.Process(unreaped.pid), listed]
        monkeypatch.setattr(server, "process", lambda: type("Tree", (), {"children": lambda self: children})())
        assert [child.pid for child in server.zombies()] == [unreaped.pid]
    finally:
        unreaped.wait()


def test_killing_a_server_that_has_ended_spares_the_process_that_has_its_pid_now(tmp_path):
    """Pids wrap (pid_max is 32768 by default): once a server has ended and been reaped, its pid, and so its
    session's id, may be another process's, another grading's server say. kill() must not reach it. The
    next pid is set (ns_last_pid, as root) so that a process leading a session of its own gets that pid."""
    if os.geteuid() != 0:
        pytest.skip("setting the next pid needs root")
    server = Server(SOLUTION / "single_server.py", ["--port", "0"], log_dir=tmp_path).start()
    pid = server.pid
    assert server.stop() == 0  # ended, and reaped
    stranger = None
    for _ in range(100):  # other processes of the machine may take the pid first: try again
        with open("/proc/sys/kernel/ns_last_pid", "w") as last:
            last.write(str(pid - 1))
        candidate = subprocess.Popen(["sleep", "60"], start_new_session=True)
        if candidate.pid == pid:
            stranger = candidate
            break
        candidate.kill()
        candidate.wait()
    assert stranger is not None, f"pid {pid} never came to a new process here"
    try:
        assert server.kill() == []
        time.sleep(0.2)
        assert stranger.poll() is None, "kill() reached the process that has the ended server's pid"
    finally:
        stranger.kill()
        stranger.wait()
