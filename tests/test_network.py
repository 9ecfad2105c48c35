"""One student's server can reach no other: hostile submissions graded side by side, as `course grade --jobs 2`
grades them (two `python -m autograder grade` at once), beside the reference. Each asserts that the neighbour's
grade is unchanged, that the grader never faults (exit 3), and that nothing is left running.

Where the grader is root and may make network namespaces, the servers of each check run in a network of their
own; elsewhere (CONCURRENCY_LAB_NETWORKS=shared imitates it) they share the machine's loopback, and the grader
still grades only the submission's own server."""

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_fairness import slow_for_locust

from autograder import ASSIGNMENT, KIT, SERVER_FILES, SOLUTION
from autograder.harness import NETWORKS, network_isolation

from conftest import leftovers

RUN = f"network-{os.getpid()}-"  # the tag prefix of every server these tests' gradings start
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("bwrap") or bool(network_isolation()),
    reason="networks of their own need root and network namespaces; runner uids need root, the sandbox bubblewrap",
)
SHARED = {NETWORKS: "shared"}  # the servers share the machine's loopback, as where namespaces are refused


class Grading:
    """One `python -m autograder grade` subprocess, its output in files (two at once: no pipe may fill)."""

    def __init__(self, folder: Path, submission: Path, *args: str, env: dict | None = None):
        folder.mkdir(parents=True)
        self.json, self.logs = folder / "results.json", folder / "logs"
        self.out, self.err = folder / "stdout", folder / "stderr"
        command = [sys.executable, "-m", "autograder", "grade", str(submission), "--json", str(self.json)]
        command += ["--keep-logs", str(self.logs), *args]
        environment = {**os.environ, "COLUMNS": "200", "CONCURRENCY_LAB_TAG_PREFIX": RUN, **(env or {})}
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.popen = subprocess.Popen(command, cwd=KIT, stdout=out, stderr=err, env=environment)

    def finish(self, timeout: float) -> "Grading":
        """Wait for it to end (TimeoutExpired after timeout seconds: then it is killed, and its servers die with it)."""
        try:
            self.code = self.popen.wait(timeout)
        finally:
            if self.popen.poll() is None:
                self.popen.kill()
                self.popen.wait(10)
        self.printed = self.out.read_text() + self.err.read_text()
        self.results = json.loads(self.json.read_text()) if self.json.exists() else {}
        return self

    @property
    def tests(self) -> list[dict]:
        return self.results.get("tests", [])

    def log(self) -> str:
        """What the servers printed (their stdout)."""
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("**/*.out")))


def side_by_side(tmp_path: Path, *gradings: tuple, timeout: float = 150) -> list[Grading]:
    """Start every grading (name, submission, args..., [env dict]) at once; wait for all of them."""
    started = []
    try:
        for name, submission, *args in gradings:
            env = args.pop() if args and isinstance(args[-1], dict) else None
            started.append(Grading(tmp_path / "gradings" / name, submission, *args, env=env))
    finally:
        deadline, late = time.monotonic() + timeout, []
        for grading in started:  # each is finished (killed, if need be), whatever the others did
            try:
                grading.finish(max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired as exc:
                late.append(exc)
    assert not late, f"gradings that did not finish within {timeout:g} s: {late}"
    return started


def full_marks(grading: Grading) -> None:
    """The reference's grading as alone: every check passed, exit 0."""
    assert grading.code == 0, grading.printed[-3000:]
    lost = [(t["name"], t["output"]) for t in grading.tests if t["score"] < t["max_score"]]
    assert grading.tests and not lost, lost
    assert "grader fault" not in grading.printed


def submission_of(folder: Path, base: Path = SOLUTION, **files: str) -> Path:
    """A copy of base's server files, with files (name without .py: source) written over them."""
    folder.mkdir(parents=True)
    for name in SERVER_FILES:
        shutil.copy(base / name, folder / name)
    for name, source in files.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(source).lstrip())
    return folder


def in_every_server(*attacks: str, base: Path = SOLUTION) -> str:
    """handler.py of base, whose run() first runs each attack (Python source of a function body, which may
    use listener, the handler's Listener) in every server, of every mode, right before it serves."""
    handler = (base / "handler.py").read_text()
    body = "def attack(listener):\n" + "".join(
        textwrap.indent(textwrap.dedent(a).strip(), "    ") + "\n" for a in attacks
    )
    start = handler.index("    try:\n        serve(listener, **extras)")
    handler = handler[:start] + "    attack(listener)\n" + handler[start:]
    body += "\n\n"
    at = handler.index("def run(")
    return handler[:at] + body + handler[at:]


def test_a_network_of_its_own_is_reached_from_inside_only(tmp_path):
    from autograder.harness import Network, inet_sockets

    box, other = Network.make(), Network.make()
    try:
        with box.socket() as server:
            with box.inside():
                server.bind(("127.0.0.1", 0))
            server.listen()
            port = server.getsockname()[1]
            with box.socket() as client:  # a socket stays in the network it was made in
                client.connect(("127.0.0.1", port))
                assert {(s.state, s.local) for s in inet_sockets(network=box)} >= {("LISTEN", ("127.0.0.1", port))}
            for sock in (socket.socket(), other.socket()):  # from this test's own network, from another box
                with sock, pytest.raises(ConnectionRefusedError):
                    sock.connect(("127.0.0.1", port))
            assert ("127.0.0.1", port) not in {s.local for s in inet_sockets() if s.state == "LISTEN"}
    finally:
        box.close(), other.close()


def test_the_servers_of_one_check_share_a_network_and_no_one_else_does(tmp_path):
    from autograder import sandbox
    from autograder.client import exchange, get
    from autograder.harness import SHARED as ON_LOOPBACK
    from autograder.harness import Limits, Server, inet_sockets

    os.chmod(tmp_path, 0o711)  # as a grading's folder is: runner uids pass through to their own
    isolation = sandbox.detect([])
    script = SOLUTION / "single_server.py"
    servers = [
        Server(script, ["--port", "0"], tmp_path / name, limits=Limits(), isolation=isolation, network=network)
        for name, network in (("a", "check"), ("b", "check"), ("c", ON_LOOPBACK))
    ]
    try:
        first, second, shared = (server.start() for server in servers)
        assert first.box is second.box and first.box is not None and shared.box is None
        assert first.network.startswith("a network of its own") and "(as asked)" in shared.network
        for server in servers:
            assert exchange(server.address, get("/"), timeout=2, whole_reply=True).raw.startswith(b"HTTP/1.1 200")
        assert exchange((shared.host, shared.port), get("/"), timeout=2).raw  # on the machine's loopback
        outside = {s.local for s in inet_sockets() if s.state == "LISTEN"}
        if ("127.0.0.1", first.port) not in outside:  # unless a server of the machine has the same port number
            assert "ConnectionRefusedError" in exchange((first.host, first.port), get("/"), timeout=2).error
    finally:
        assert [server.kill() for server in servers] == [[], [], []]


def test_where_namespaces_are_refused_the_servers_share_the_loopback_and_it_is_said(tmp_path):
    import container

    container.require()  # a Docker-like container: its seccomp filter refuses unshare and setns
    ask = "from autograder import harness; print(harness.network_isolation())"
    run = container.run([sys.executable, "-c", ask], timeout=60, cwd=KIT)
    assert run.returncode == 0 and "network namespaces are refused here (Operation not permitted)" in run.stdout


# A borrowed grade: an unfilled skeleton, and a multithread server that serves no one but announces another
# server's address, found in /proc/net/tcp (every listener of its network) and tried with a request. It
# tries only the port of the test's own victim (VICTIM, written in): on a shared loopback every listener
# of the machine is there, and other work on this machine must not receive its requests.
BORROW = '''
"""A multithread server in name only: it announces another server's address."""

import os
import signal
import socket
import sys
import threading
import time


def listeners() -> list[int]:
    own = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            own.add(os.readlink(f"/proc/self/fd/{fd}")[8:-1])
        except OSError:
            pass
    found = []
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = line.split()
        port = int(fields[1].split(":")[1], 16)
        if fields[3] == "0A" and fields[1].startswith("0100007F:") and fields[9] not in own and port == VICTIM:
            found.append(port)
    return found


def answers(port: int) -> bool:
    request = b"GET /probe HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(request)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        return reply.startswith(b"HTTP/1.1 200 OK") and reply.endswith(request)
    except OSError:
        return False


if __name__ == "__main__":
    seen = listeners()
    victim = next((port for port in seen if answers(port)), 1)  # none to borrow: a port nobody listens on
    print(f"borrowing {victim} of {len(seen)} listeners seen", file=sys.stderr, flush=True)
    for _ in range(2):  # threads to show, that serve no one
        threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    print(f"Serving on 127.0.0.1:{victim}", flush=True)
    while True:
        time.sleep(1)
'''


@pytest.mark.parametrize(
    "network",
    [{}, SHARED, {**SHARED, "isolation": "none"}],
    ids=["own network", "shared loopback, runner uid", "shared loopback, not isolated"],
)
def test_a_borrowed_address_gets_no_point_and_the_neighbour_keeps_its_grade(tmp_path, start_server, network):
    victim = start_server("multithread")  # a correct server, outside every box
    env = {k: v for k, v in network.items() if k != "isolation"}
    isolation = ["--isolation", network["isolation"]] if "isolation" in network else []
    borrow = BORROW.replace("\nimport os\n", f"\nimport os\n\nVICTIM = {victim.port}\n", 1)
    attacker = submission_of(tmp_path / "borrower", base=ASSIGNMENT, multithread_server=borrow)
    borrower, neighbour = side_by_side(
        tmp_path,
        ("borrower", attacker, "--mode", "multithread", *isolation, env),
        ("neighbour", SOLUTION, "--mode", "multithread", env),
    )
    assert borrower.code == 0, borrower.printed[-3000:]
    assert borrower.results["score"] == 0 and borrower.tests
    said = {
        re.search(r"printed 'Serving on 127\.0\.0\.1:(\d+)', but none of its own processes listens there", t["output"])
        for t in borrower.tests
    }
    assert None not in said, borrower.tests
    ports = {int(match[1]) for match in said}  # one per start of a server (its arguments differ)
    assert ports == ({victim.port} if network else {1})  # on a shared loopback it found the victim; else no one
    full_marks(neighbour)
    assert leftovers(RUN) == []


# A neighbour harmed: every server of this submission (the reference, otherwise) holds three connections to
# every listener it can see but its own (TARGETS: None), looking again every 50 ms while it runs, and says
# nothing on them but TOKEN (by which the test's own listener knows them among whoever else comes). Where
# the loopback is shared, it is given the one port it may hold: other work on this machine must not suffer.
HOLD = """
import os, socket, threading, time
TOKEN, TARGETS = b"hold-token", None

def hold():
    held, sockets = set(), []
    while True:
        own = set()
        for fd in os.listdir("/proc/self/fd"):
            try:
                own.add(os.readlink(f"/proc/self/fd/{fd}")[8:-1])
            except OSError:
                pass
        for line in open("/proc/net/tcp").read().splitlines()[1:]:
            fields = line.split()
            port = int(fields[1].split(":")[1], 16)
            if fields[3] == "0A" and fields[9] not in own and port not in held and port in (TARGETS or [port]):
                held.add(port)
                for _ in range(3):
                    try:
                        sockets.append(socket.create_connection(("127.0.0.1", port), timeout=0.5))
                        sockets[-1].sendall(TOKEN)
                    except OSError:
                        pass
                print(f"[holding {port}]", flush=True)
        time.sleep(0.05)

threading.Thread(target=hold, daemon=True).start()
"""


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A socket of the test's listening on 127.0.0.1, outside every box, that accepts no one: whoever
    reaches it waits in its queue."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        sock.setblocking(False)
        yield sock


def holding(token: bytes, targets: list[int] | None = None) -> str:
    """handler.py of the reference, with HOLD in every server, marked with token, holding only targets if given."""
    return in_every_server(HOLD.replace('b"hold-token", None', f"{token!r}, {targets!r}"))


def reached(sock: socket.socket, token: bytes) -> int:
    """How many clients that sent token reached the listener (and waited in its queue)."""
    count = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            conn = sock.accept()[0]
            with conn, contextlib.suppress(OSError):
                conn.settimeout(1)
                count += conn.recv(64).startswith(token)
    return count


def test_a_server_holding_connections_to_every_listener_harms_no_neighbour(tmp_path, listener):
    token = f"hold-{tmp_path.name}".encode()
    attacker = submission_of(tmp_path / "holder", handler=holding(token))
    modes = ("--mode", "multiprocess", "--mode", "single")  # the two gradings side by side all along
    holder, neighbour = side_by_side(tmp_path, ("holder", attacker, *modes), ("neighbour", SOLUTION, *modes))
    full_marks(neighbour)
    assert holder.code == 0 and "grader fault" not in holder.printed, holder.printed[-3000:]
    assert reached(listener, token) == 0  # nothing of it reached outside its network (one check's servers: each other)
    assert leftovers(RUN) == []


STRANGLE = """
import os, socket, threading, time

def strangle():  # every listener of its network but its own: as many half-sent requests as 4 processes hold
    own = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            own.add(os.readlink(f"/proc/self/fd/{fd}")[8:-1])
        except OSError:  # the listing's own descriptor, closed by now
            pass
    seen = set()
    while True:
        for line in open("/proc/net/tcp").read().splitlines()[1:]:
            fields = line.split()
            port = int(fields[1].split(":")[1], 16)
            if fields[3] == "0A" and fields[9] not in own and port not in seen:
                seen.add(port)
                print(f"[strangling {port}]", flush=True)
                for _ in range(4):
                    if os.fork() == 0:
                        held = []
                        for _ in range(300):
                            try:
                                held.append(socket.create_connection(("127.0.0.1", port), timeout=1))
                                held[-1].sendall(b"GET / HTTP/1.1\\r\\n")
                            except OSError:
                                pass
                        time.sleep(3600)
        time.sleep(0.05)

threading.Thread(target=strangle, daemon=True).start()
"""


def test_a_server_that_strangles_the_reference_beside_it_loses_the_load_check_not_the_grading(tmp_path):
    """Slow for locust, so that the load check loads a new server of it beside the kit's reference; each of
    its servers holds hundreds of half-sent requests on every other listener of its network (on the
    reference's, before the reference had a network of its own, until it could start no thread: a grader
    fault). The reference is out of its reach: the slow server loses the load point, and the grading is a
    grade."""
    slow = slow_for_locust(tmp_path / "slow")
    attacker = submission_of(tmp_path / "strangler", handler=in_every_server(STRANGLE, base=slow))
    (grading,) = side_by_side(tmp_path, ("strangler", attacker, "--mode", "multithread", "--check", "load"))
    assert grading.code == 0 and "grader fault" not in grading.printed, grading.printed[-3000:]
    (test,) = grading.tests
    assert test["score"] == 0 and "loaded at the same time" in test["output"], test
    assert leftovers(RUN) == []


def test_the_holder_is_real_on_a_shared_loopback_it_reaches_other_servers(tmp_path, listener):
    token, port = f"hold-{tmp_path.name}".encode(), listener.getsockname()[1]
    attacker = submission_of(tmp_path / "holder", handler=holding(token, [port]))
    (holder,) = side_by_side(tmp_path, ("holder", attacker, "--mode", "single", "--check", "echo", SHARED))
    assert holder.code == 0, holder.printed[-3000:]
    assert reached(listener, token) == 3 and f"[holding {port}]" in holder.log()
    assert leftovers(RUN) == []


# A zoo of servers that misbehave at random while they are graded: each behaviour is the reference's
# handler with a thread (or a setting) that does it.
CHURN = """
import os, random, threading, time

def churn():  # workers appear and vanish: children forked at random, ending at random, reaped behind its back
    while True:
        if os.fork() == 0:
            time.sleep(random.random() * 0.1)
            os._exit(0)
        time.sleep(random.random() * 0.05)
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass

threading.Thread(target=churn, daemon=True).start()
"""
DIES = """
import os, random, signal, threading, time

def die():  # the server ends at a moment of its choosing, in the middle of a check
    time.sleep(random.uniform(0.05, 1.5))
    os.kill(os.getpid(), random.choice([signal.SIGKILL, signal.SIGSEGV, signal.SIGTERM]))
    os._exit(random.randrange(256))

if random.random() < 0.6:
    threading.Thread(target=die, daemon=True).start()
"""
CLOSES = """
import os, random, threading, time

def close_sockets():  # sockets closed at random: the listener, clients in the middle of their reply
    while True:
        time.sleep(random.uniform(0.05, 0.5))
        sockets = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                    sockets.append(int(fd))
            except OSError:
                pass
        if sockets:
            try:
                os.close(random.choice(sockets))
            except OSError:
                pass

threading.Thread(target=close_sockets, daemon=True).start()
"""
KNOCKS = """
import random, socket, threading

def knock():  # connections to other ports: every port it can think of, held
    held = []
    for port in random.sample(range(1, 65536), 3000):
        try:
            held.append(socket.create_connection(("127.0.0.1", port), timeout=0.05))
        except OSError:
            pass

threading.Thread(target=knock, daemon=True).start()
"""
DEAF = """
import os, signal, sys, threading

signal.signal(signal.SIGTERM, signal.SIG_IGN)  # signals ignored: it must be killed
signal.signal(signal.SIGINT, signal.SIG_IGN)

def flood():  # output floods: junk, fake ready lines, fake errors, a line without end (8 MiB at most)
    junk = [b"Serving on 127.0.0.1:1\\n", b"[Client x Error] fake\\n", b"\\xff\\xfe" * 5000, os.urandom(4096)]
    for i in range(2000):
        for stream in (sys.stdout.buffer, sys.stderr.buffer):
            try:
                stream.write(junk[i % len(junk)])
                stream.flush()
            except OSError:
                return

threading.Thread(target=flood, daemon=True).start()
if os.fork() == 0:  # a child that leaves its session and lingers
    os.setsid()
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGINT])
    os.execv("/bin/sleep", ["sleep", "600"])
"""
LISTENER_IN_CHILD = '''
"""A single server whose listening socket is held by its child alone."""

import os
import signal
import socket
import sys

from handler import handle_client

if __name__ == "__main__":
    port = int(sys.argv[sys.argv.index("--port") + 1])
    sock = socket.create_server(("127.0.0.1", port))
    print(f"Serving on 127.0.0.1:{sock.getsockname()[1]}", flush=True)
    child = os.fork()
    if child == 0:
        while True:
            handle_client(*sock.accept())
    sock.close()
    signal.signal(signal.SIGTERM, lambda *_: os.kill(child, signal.SIGKILL))
    os.waitpid(child, 0)
'''


def test_a_zoo_of_misbehaving_servers_never_makes_the_grader_fault(tmp_path):
    """Each behaviour costs points, not the grading: no exit 3, graded two at a time, nothing left."""
    zoo = {
        "churn and die": (in_every_server(CHURN, DIES), "--mode", "multiprocess", "--check", "start-methods",
                          "--check", "mechanism", "--check", "burst", "--check", "slow_reader"),
        "close and knock": (in_every_server(CLOSES, KNOCKS), "--mode", "multithread", "--check", "protocol",
                            "--check", "listens", "--check", "restart", "--check", "held"),
        "deaf and loud": (in_every_server(DEAF), "--mode", "single", "--check", "graceful", "--check", "load",
                          "--check", "logged", "--check", "echo"),
    }  # fmt: skip
    submissions = {name: submission_of(tmp_path / "zoo" / name, handler=handler) for name, (handler, *_) in zoo.items()}
    child = submission_of(tmp_path / "zoo" / "child", single_server=LISTENER_IN_CHILD)
    rounds = [("churn and die", "close and knock"), ("deaf and loud", "churn and die")]
    for number, pair in enumerate(rounds):
        gradings = [(f"{number} {name}", submissions[name], *zoo[name][1:]) for name in pair]
        for grading in side_by_side(tmp_path, *gradings):
            assert grading.code == 0 and "grader fault" not in grading.printed, grading.printed[-3000:]
            if "deaf" in grading.json.parent.name:  # ignores SIGTERM and SIGINT: it cannot stop gracefully
                assert all(t["score"] == 0 for t in grading.tests if "SIGTERM" in t["name"]), grading.tests
    (listens,) = side_by_side(tmp_path, ("child", child, "--mode", "single", "--check", "slow_reader"))
    (test,) = listens.tests
    assert test["score"] == 0 and "the server's own process does not hold its listening socket" in test["output"]
    assert leftovers(RUN) == []


def in_every_client(attack: str, handler: str | None = None) -> str:
    """handler.py (the reference's, or handler), whose handle_client first runs attack (Python source) for
    every client: in every child of the multiprocess server, in every thread of the multithread one."""
    handler = handler or (SOLUTION / "handler.py").read_text()
    start = "    with closed_cleanly(conn), client_errors_logged(addr):\n"
    assert handler.count(start) == 1
    return handler.replace(start, start + textwrap.indent(textwrap.dedent(attack).strip(), " " * 8) + "\n")


# Resource attacks, each in every child (or in every server), each bounded where it runs.
BALLOON = """
balloon = b"m" * (768 << 20)  # a memory balloon in every child: 768 MiB touched (the tree may hold 1 GiB)
"""
SPIN = """
if __import__("os").fork() == 0:  # a CPU spinner for every client, that outlives it (the tree may use 1 CPU)
    while True:
        pass
"""
FILL = """
import os
for folder in ("/tmp", "."):  # the work tmpfs and /tmp filled, by every child (each capped at 32 MiB)
    try:
        with open(os.path.join(folder, f"fill-{os.getpid()}"), "wb") as file:
            while True:
                file.write(b"f" * (1 << 20))
    except OSError:
        pass
"""
PORTS = """
import os, socket

def exhaust(ports):  # every ephemeral port bound and held, and connections left in TIME_WAIT with the rest
    bound = []
    for port in ports:
        try:
            sock = socket.socket()
            sock.bind(("127.0.0.1", port))
            bound.append(sock)
        except OSError:
            pass
    print(f"[bound {len(bound)}]", flush=True)
    while True:
        try:
            socket.create_connection(("127.0.0.1", listener.port), timeout=1).close()  # ours closes first
        except OSError:
            pass

low, high = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
for start in range(low, high + 1, 4040):  # 4040 ports per child: under its 4096 descriptors
    if os.fork() == 0:
        exhaust(range(start, min(start + 4040, high + 1)))
"""
RESOURCES = {
    "memory": (in_every_client(BALLOON), "--mode", "multiprocess", "--check", "held", "--check", "mechanism"),
    "cpu": (in_every_client(SPIN), "--mode", "multiprocess", "--check", "load", "--check", "held"),
    "tmpfs": (in_every_client(FILL), "--mode", "multiprocess", "--check", "load", "--check", "burst"),
    "ports": (in_every_server(PORTS), "--mode", "single", "--check", "load", "--check", "protocol"),
}


@pytest.mark.parametrize("attack", RESOURCES)
def test_a_resource_attack_is_bounded_graded_and_harms_no_neighbour(tmp_path, attack):
    handler, *args = RESOURCES[attack]
    attacker = submission_of(tmp_path / attack, handler=handler)
    served, failed = [], []  # meanwhile, this test's own clients outside the boxes find ports and their listener
    stop = threading.Event()

    def connect_meanwhile(listener: socket.socket) -> None:
        while not stop.wait(0.2):
            try:
                with socket.create_connection(listener.getsockname(), timeout=5), listener.accept()[0]:
                    served.append(1)
            except OSError as exc:
                failed.append(exc)

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)
        thread = threading.Thread(target=connect_meanwhile, args=(listener,), daemon=True)
        thread.start()
        try:
            grading, neighbour = side_by_side(
                tmp_path,
                (attack, attacker, *args),
                ("neighbour", SOLUTION, "--mode", "multiprocess", "--mode", "single"),
            )
        finally:
            stop.set()
            thread.join(10)
    full_marks(neighbour)
    assert grading.code == 0 and "grader fault" not in grading.printed, grading.printed[-3000:]
    if attack in ("memory", "ports"):  # its own children killed, its own clients without a port: points lost
        assert any(t["score"] < t["max_score"] for t in grading.tests)
    assert len(served) > 5 and not failed, failed
    if attack == "ports":  # in one server's network, its children held the ephemeral range
        held = [sum(map(int, re.findall(r"\[bound (\d+)\]", p.read_text()))) for p in grading.logs.glob("*.out")]
        assert max(held) > 20000, held  # of 28232; the rest in TIME_WAIT, left by the children that bound first
    assert leftovers(RUN) == []
