"""Process control, in one place: start a server as a subprocess, wait for its ready line, stop it,
and kill its whole process tree, checking that nothing is left behind.

A server runs in a session of its own, with stdout and stderr going to files (never to a pipe that
nobody drains), and with a tag in its environment that every process it starts inherits: teardown
finds them by that tag even when they have left the server's session or lost their parent.

Untrusted code (a student's server) runs under Limits: a cap on the tasks of its whole tree (the
cgroup pids controller where it can be used; RLIMIT_NPROC, which holds for a runner uid and for a grader
that is not root; else a watchdog), on memory, on open files, on the size of what it writes, and on CPU
time; and with an Isolation (sandbox.py): as a runner uid of its own, inside bubblewrap, where it can be.
Teardown then also kills by that uid, and verifies that nothing of it is left.

What the checks look at needs no ptrace rights where it can do without: a grader that is root in a Docker
container (no CAP_SYS_PTRACE) may not read where a runner uid's descriptors lead, nor its environment. A
server's sockets are read from /proc/net/tcp and tcp6 (every socket, with its owner's uid: every process
of a runner uid is its server's), and what must take a server's socket runs as its runner uid.

Where the grader is root and may make network namespaces (not in a Docker-like container, whose seccomp
filter refuses them), the servers of one check run in a network of their own (a Network, "a box": a
namespace with only its loopback, held by a descriptor of the grader's): nothing outside reaches into it,
and nothing inside reaches any other server, student's or grader's. The grader's own clients open their
sockets in it (a socket stays in the namespace it was made in), locust runs in it, and the server's
sockets are read from the box's own /proc/net/tcp. Elsewhere every server shares the machine's loopback,
and Server.network says so.
"""

import contextlib
import ctypes
import errno
import fcntl
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from autograder import sandbox
from autograder.client import Address

READY = re.compile(r"^Serving on (?P<host>\S+):(?P<port>\d+)\s*$", re.MULTILINE)
TAG = "CONCURRENCY_LAB_TAG"  # environment variable carried by every process of one server
TAG_PREFIX = os.environ.get("CONCURRENCY_LAB_TAG_PREFIX", "")  # lets the kit's tests find their own servers
HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")
GROWING = 64  # tasks of a server tree beyond which task_limit_hit() waits to see whether it reaches the cap


LAUNCH = Path(__file__).with_name("launch.py")
SYS_PIDFD_GETFD = 438  # the same number on every Linux architecture (Linux 5.6 and later)
CGROUP_ROOT = Path("/sys/fs/cgroup")
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
CHECK, SHARED = "check", "shared"  # Server(network=...): the box of the check running; the machine's loopback
NETWORKS = "CONCURRENCY_LAB_NETWORKS"  # "shared": never make boxes (to show what they prevent, or what they cost)
ANNOUNCE_GRACE = 2.0  # seconds the announced address may take to show as listening after the ready line


class ServerError(Exception):
    """The server did not start, or did not behave as a process should (its output tells why)."""


class ServerGone(ServerError):
    """The server's own process ended, or let go of what a check was looking at (its listening socket),
    while the check ran: the submission's doing."""


class ProbeError(Exception):
    """The grader cannot see here what a check needs to see of a server: a fault of the grader, not of the
    submission."""


class Network:
    """A network of its own (a network namespace: "a box"), made by the grader and held by one of its
    descriptors, with only a loopback, up. Servers enter it before they drop their privileges (launch.py
    --netns); the grader's sockets are made in it (setns is per thread: this thread enters, makes the
    socket and comes back; the socket stays in the box) and locust runs in it. Nothing outside the box
    reaches into it; nothing inside reaches out. It lives while the descriptor is open, or while anything
    made in it (a socket, a process) still is."""

    def __init__(self, fd: int):
        self.fd = fd
        self.name = os.readlink(f"/proc/self/fd/{fd}")  # "net:[4026532187]"
        self.users: set[int] = set()  # the servers started in it and not yet killed (by id)

    @classmethod
    def make(cls) -> "Network":
        """A new box; OSError where this process may make none (not root; a container's seccomp filter)."""
        made: dict = {}

        def unshare() -> None:  # in a thread of its own, which ends in the new namespace: this one never moves
            try:
                if _libc().unshare(CLONE_NEWNET) != 0:
                    error = ctypes.get_errno()
                    raise OSError(error, os.strerror(error))
                made["fd"] = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # ip link set lo up
                    request = struct.pack("16sh", b"lo", 0)
                    flags = struct.unpack("16sh", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
                    fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))
            except OSError as exc:
                made["error"] = exc

        thread = threading.Thread(target=unshare, name="network namespace")
        thread.start()
        thread.join()
        if "error" in made:
            if "fd" in made:
                os.close(made["fd"])
            raise made["error"]
        return cls(made["fd"])

    @contextlib.contextmanager
    def inside(self) -> Iterator[None]:
        """This thread in the box for the block, then back where it was."""
        if self.fd < 0:
            raise ProbeError("the server's network was closed before the check ended")
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(self.fd)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(home)

    def socket(self, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
        """A socket of the box."""
        with self.inside():
            return socket.socket(family, kind)

    def read(self, path: str) -> str:
        """A file of /proc/thread-self/net as the box shows it (e.g. "tcp"): its TCP sockets."""
        with self.inside(), open(f"/proc/thread-self/net/{path}") as file:
            return file.read()

    def command(self, command: list[str]) -> list[str]:
        """command, run in the box (launch.py enters it, then execs it): pass self.fd on (pass_fds)."""
        return [*launcher(network=self.fd), "--", *command]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


_boxes: dict[str, Network] = {}  # {the check running: its box}
_refused: list[str] = []  # why no box can be made here, once found
_made: list[bool] = []  # a box could be made here, once found


def network_isolation() -> str:
    """Why the servers of each check share the machine's loopback here; "" where they get a network of
    their own (for the isolation's description)."""
    if _refused:
        return _refused[0]
    if os.environ.get(NETWORKS) == SHARED:
        return f"networks of their own turned off ({NETWORKS}={SHARED})"
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not _made:  # tried once per process: every check's serve fixture asks
        try:
            Network.make().close()
        except OSError as exc:
            _refused.append(f"network namespaces are refused here ({exc.strerror or exc})")
            return _refused[0]
        _made.append(True)
    return ""


def _check_box() -> Network | None:
    """The box of the check running, made for its first server, shared by its others (a server restarted
    on the same port meets the first one's TIME_WAIT); a box of its own outside a check; None where none
    can be made here. A check is named by pytest's PYTEST_CURRENT_TEST; its box is closed once its servers
    are killed and another check starts a server, or at its teardown."""
    if network_isolation():
        return None
    key = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0] or f"server {uuid.uuid4().hex}"
    for other, box in list(_boxes.items()):
        if other != key and not box.users:
            box.close()
            del _boxes[other]
    if key not in _boxes:
        try:
            _boxes[key] = Network.make()
        except OSError as exc:
            _refused.append(f"network namespaces are refused here ({exc.strerror or exc})")
            return None
    return _boxes[key]


def _leave_box(server: "Server") -> None:
    box = server.box
    if box is None:
        return
    box.users.discard(id(server))
    phase = os.environ.get("PYTEST_CURRENT_TEST", "")
    key = next((k for k, b in _boxes.items() if b is box), None)
    if key is not None and not box.users and (key.startswith("server ") or phase.endswith("(teardown)")):
        box.close()
        del _boxes[key]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc().setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"setns: {os.strerror(error)}")


@dataclass(frozen=True)
class InetSocket:
    """A TCP socket, as /proc/net/tcp and tcp6 list it."""

    state: str  # "LISTEN", "ESTABLISHED", or the kernel's number for the others
    local: tuple[str, int]
    remote: tuple[str, int]
    uid: int  # of its owner
    inode: int  # 0 once no process holds it (an accepted connection still queued, a closed one)


@dataclass(frozen=True)
class Limits:
    """Caps for a server's whole process tree."""

    tasks: int = 1024  # processes and threads, together
    memory: int = 4 << 30  # bytes of address space per process
    tree_memory: int = 1 << 30  # bytes of memory of the whole tree, where a cgroup can hold it (the reference: 35 MiB)
    cpus: float = 1.0  # CPUs the whole tree may keep busy, where a cgroup can hold it (cgroup v1 cpu controller)
    output: int = 64 << 20  # bytes in any one file it writes (its stdout included): a flood stops there
    cpu_seconds: int = 120  # of CPU time per process: an endless loop ends
    open_files: int = 4096  # descriptors per process
    disk: int = 64 << 20  # bytes it may leave in its work folder (and, in a sandbox, in its /tmp)


def remove_group(path: Path, seconds: float = 1.0, busy: Callable[[Path], None] | None = None) -> bool:
    """Remove a control group, trying again for up to seconds while it still holds tasks (the kernel lets go of
    ended ones shortly after they are reaped; busy(path), if given, is called before each new try); whether
    it is gone."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            if busy is not None:
                busy(path)
            time.sleep(0.02)


STALE_GROUP = 600  # seconds after which an empty group of the kit's is another grading's leftover


def remove_stale_groups(folder: Path, older_than: float = STALE_GROUP) -> list[Path]:
    """Remove the kit's control groups in folder that hold no task and were made over older_than seconds ago:
    what a grader killed before its teardown left (a live grading's groups hold its server, or are younger).
    The groups removed."""
    removed = []
    now = time.time()
    for group in folder.glob("concurrency-lab-*"):
        with contextlib.suppress(OSError):
            if now - group.stat().st_mtime > older_than and not (group / "cgroup.procs").read_text().strip():
                group.rmdir()  # refused (EBUSY) if a task joined meanwhile
                removed.append(group)
    return removed


class ControlGroups:
    """Control groups (cgroup v1 pids, memory and cpu, or v2) made for one server tree, where this user may make
    them."""

    def __init__(self, name: str, limits: Limits):
        self.paths: list[Path] = []
        self.caps_tasks = False
        settings = {
            "pids": {"pids.max": limits.tasks},
            "memory": {"memory.limit_in_bytes": limits.tree_memory},
            "cpu": {"cpu.cfs_period_us": 100000, "cpu.cfs_quota_us": int(limits.cpus * 100000)},
            "": {"pids.max": limits.tasks, "memory.max": limits.tree_memory},  # v2: one hierarchy
        }
        for controller, own in _own_cgroups().items():
            if controller not in settings:
                continue
            path = (CGROUP_ROOT / controller if controller else CGROUP_ROOT) / own.lstrip("/") / name
            remove_stale_groups(path.parent)
            try:
                path.mkdir()
            except OSError:
                continue
            try:
                for file, value in settings[controller].items():
                    (path / file).write_text(str(value))
            except OSError:
                if controller == "":  # v2 without the controllers enabled for children
                    path.rmdir()
                    continue
            self.paths.append(path)
            self.caps_tasks |= (path / "pids.max").exists()

    def pids(self) -> set[int]:
        found = set()
        for path in self.paths:
            with contextlib.suppress(OSError):
                found.update(int(line) for line in (path / "cgroup.procs").read_text().split())
        return found

    def task_limit_hit(self) -> bool:
        """Whether a fork or a new thread was refused for the tree's task cap."""
        for path in self.paths:
            with contextlib.suppress(OSError, ValueError):
                events = dict(line.split() for line in (path / "pids.events").read_text().splitlines())
                if int(events.get("max", 0)):
                    return True
        return False

    def remove(self) -> None:
        for path in self.paths:
            remove_group(path)


def _own_cgroups() -> dict[str, str]:
    """This process's control group per controller ("" for the v2 hierarchy), where they are mounted here."""
    groups = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(","):
                if controller == "" and not (CGROUP_ROOT / "cgroup.controllers").exists():
                    continue
                if controller and not (CGROUP_ROOT / controller / "cgroup.procs").exists():
                    continue
                groups[controller] = path
    return groups


class Server:
    """One server subprocess: `python -u SCRIPT ARGS...`, run in cwd, its output in log_dir.

    With limits, the server is untrusted: it runs under them with isolation (a sandbox.Isolation; by
    default none, but still with a cleared environment), and sees only the .py files of its folder; where
    it is isolated, in a network of its own where one can be made: network CHECK (the box of the check
    running, shared by the check's servers), or a Network of the caller's; SHARED: the machine's loopback.
    Its ready line must then announce a socket on which its own processes listen, on the host asked for."""

    def __init__(
        self,
        script: Path,
        args: list[str],
        log_dir: Path,
        cwd: Path | None = None,
        limits: Limits | None = None,
        isolation: "sandbox.Isolation | None" = None,
        network: "Network | str" = CHECK,
    ):
        self.script, self.args, self.log_dir = Path(script).resolve(), list(args), Path(log_dir)
        self.cwd = Path(cwd) if cwd else self.script.parent
        self.limits = limits
        self.isolation = isolation
        self.tag = TAG_PREFIX + uuid.uuid4().hex
        self.groups: ControlGroups | None = None
        self.runner: sandbox.Runner | None = None
        self.workdir: Path | None = None  # a runner uid's own copy of the folder, without a sandbox
        self.disk_used = 0  # bytes it left there (a sandbox's tmpfs caps its own)
        self.watchdog_fired = False
        self.stdout_path = self.log_dir / f"{self.script.stem}-{self.tag[-8:]}.out"
        self.stderr_path = self.stdout_path.with_suffix(".err")
        self.popen: subprocess.Popen | None = None
        self.server_pid = 0  # inside a sandbox, the server is a grandchild of popen
        self.host, self.port = "", 0
        self.network_asked = network
        self.box: Network | None = None  # the network it runs in, where it has one of its own

    @property
    def pid(self) -> int:
        """The server's own process (inside a sandbox, not bubblewrap's)."""
        assert self.popen is not None, "the server was not started"
        return self.server_pid or self.popen.pid

    @property
    def sandboxed(self) -> bool:
        return self.limits is not None and self.isolation is not None and self.isolation.level == "sandbox"

    @property
    def address(self) -> Address:
        """(host, port) as announced, with the box it is reached in (client.connect makes its sockets there)."""
        return Address(self.host, self.port, self.box)

    @property
    def network(self) -> str:
        """Where the started server's sockets are, in words for the isolation's description."""
        if self.box is not None:
            return "a network of its own (a loopback only, shared with no other server)"
        shared = "the machine's loopback, shared with every other server"
        if not self._boxed():
            return f"{shared} ({'as asked' if self.network_asked == SHARED else 'not isolated'})"
        return f"{shared} ({network_isolation()})"

    def _boxed(self) -> bool:
        """Whether this server is to run in a box: untrusted and isolated, unless the caller says otherwise."""
        if isinstance(self.network_asked, Network):
            return True
        level = self.isolation.level if self.isolation else "none"
        return self.network_asked == CHECK and self.limits is not None and level != "none"

    def in_network(self, command: list[str]) -> tuple[list[str], tuple[int, ...]]:
        """(command, descriptors to pass on) to run command where the server's clients are: in its box."""
        if self.box is None:
            return command, ()
        return self.box.command(command), (self.box.fd,)

    def process(self) -> psutil.Process:
        """The server's own process; ServerGone once it has ended."""
        try:
            own = self._own()
        except psutil.NoSuchProcess:
            own = None
        if own is None:
            raise ServerGone(self._ended())
        return own

    def _own(self) -> psutil.Process | None:
        """The server's own process while its pid is surely still the server's, else None: once the server is
        reaped, the kernel may give its pid to another process (pids wrap), another grading's server say."""
        if self.server_pid:  # inside a sandbox, bubblewrap's init reaps it: known by its start time
            return self._server if self._server.is_running() else None
        if self.popen is None or self.popen.returncode is not None:  # reaped by us
            return None
        return psutil.Process(self.popen.pid)  # our child, unreaped: alive, or a zombie that keeps its pid

    def _ended(self) -> str:
        status = self.popen.poll() if self.popen is not None else None
        return "the server's process ended" + (f" (exit status {status})" if status is not None else "")

    def start(self, ready_timeout: float = 10.0) -> "Server":
        """Start the server and wait for its `Serving on HOST:PORT` line; ServerError if it never comes."""
        self.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        files: list[int] = []
        if self._boxed():
            self.box = self.network_asked if isinstance(self.network_asked, Network) else _check_box()
            if self.box is not None:
                self.box.users.add(id(self))
        try:
            command, env, cwd = self._command(files)
            with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
                self.popen = subprocess.Popen(
                    command,
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                    pass_fds=[*files, *([self.box.fd] if self.box else [])],
                )
        finally:
            for fd in files:
                os.close(fd)
        capped = (self.groups and self.groups.caps_tasks) or self.runner is not None
        if self.limits is not None and not capped and os.geteuid() == 0:
            threading.Thread(target=self._watch_tasks, daemon=True, name=f"watchdog {self.tag[-8:]}").start()
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            match = READY.search(self.output())
            if match:
                self.host, self.port = match["host"], int(match["port"])
                if self.sandboxed:
                    self.server_pid = self._sandboxed_server()
                    self._server = psutil.Process(self.server_pid)  # knows it by its start time: never a reused pid
                if self.limits is not None:
                    self._verify_address(min(ANNOUNCE_GRACE, max(deadline - time.monotonic(), 0.5)))
                return self
            if self.popen.poll() is not None:
                raise ServerError(f"exited with status {self.popen.returncode} before printing 'Serving on HOST:PORT'")
            time.sleep(0.02)
        raise ServerError(f"printed no 'Serving on HOST:PORT' line within {ready_timeout:g} s")

    def _verify_address(self, grace: float) -> None:
        """That the announced address is the server's own: a socket on which its processes listen, on the
        host asked for (a wildcard address listens there too); ServerError otherwise. A server may print its
        line just before it listens: it has grace seconds."""
        asked = self.args[self.args.index("--host") + 1] if "--host" in self.args[:-1] else "127.0.0.1"
        said = f"printed 'Serving on {self.host}:{self.port}'"
        if self.host != asked:
            raise ServerError(f"{said}, but it was asked to listen on {asked}")
        wildcard = "::" if ":" in asked else "0.0.0.0"
        deadline = time.monotonic() + grace
        while True:
            listening = [s.local for s in self._sockets() if s.state == "LISTEN"]
            if (asked, self.port) in listening or (wildcard, self.port) in listening:
                return
            if self.popen is not None and self.popen.poll() is not None:
                raise ServerError(f"{said}, then exited with status {self.popen.returncode}")
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        where = ", ".join(f"{host}:{port}" for host, port in sorted(set(listening))) or "no address at all"
        raise ServerError(
            f"{said}, but none of its own processes listens there (they listen on {where}): the address "
            "printed must be the one the server itself listens on"
        )

    def _command(self, files: list[int]) -> tuple[list[str], dict[str, str], Path]:
        """(command, environment, folder) to start the server with; files: descriptors to pass on."""
        if self.limits is None:  # trusted: the kit's reference, as it is
            env = {**os.environ, TAG: self.tag, "PYTHONDONTWRITEBYTECODE": "1"}
            return [sys.executable, "-u", str(self.script), *self.args], env, self.cwd
        level = self.isolation.level if self.isolation else "none"
        python = self.isolation.python if self.isolation else sys.executable
        if level != "none" and os.geteuid() == 0:
            self.runner = sandbox.claim_runner()
        uid = self.runner.uid if self.runner else None
        sources = sorted(p for p in self.cwd.glob("*.py") if p.is_file() and not p.is_symlink())
        if level == "sandbox":
            assert self.isolation is not None
            inside = []
            for path in sources:
                files.append(os.open(path, os.O_RDONLY | os.O_NOFOLLOW))
                inside += ["--file", str(files[-1]), f"{sandbox.WORK}/{path.name}"]
            bwrap = [sandbox.BWRAP, *sandbox.view(python, self.isolation.tmpfs_size), *inside]
            command = [*bwrap, python, "-u", self.script.name, *self.args]
            return self._limited(command, uid), sandbox.environment(sandbox.WORK, {TAG: self.tag}), Path("/")
        cwd = self.cwd
        if uid is not None:  # a runner uid without a sandbox: a copy of the folder of its own
            cwd = self.workdir = self.log_dir.parent / f"work-{self.tag[-12:]}"
            cwd.mkdir(mode=0o700)
            for path in sources:
                shutil.copyfile(path, cwd / path.name)
                os.chown(cwd / path.name, uid, uid)
            os.chown(cwd, uid, uid)
        command = [python, "-u", self.script.name if uid is not None else str(self.script), *self.args]
        return self._limited(command, uid), sandbox.environment(str(cwd), {TAG: self.tag}), cwd

    def _limited(self, command: list[str], uid: int | None) -> list[str]:
        """command, started through launch.py under self.limits (as uid, where given)."""
        assert self.limits is not None
        self.groups = ControlGroups(f"concurrency-lab-{self.tag}", self.limits)
        network = self.box.fd if self.box else None
        return [*launcher(uid, self.groups.paths, rlimits(self.limits, uid), network), "--", *command]

    def _sandboxed_server(self) -> int:
        """The server's own pid: in bubblewrap's PID namespace, bubblewrap's init is 1 and the server 2."""
        assert self.popen is not None
        with contextlib.suppress(psutil.Error):
            for proc in psutil.Process(self.popen.pid).children(recursive=True):
                if _namespace_pids(proc.pid)[1:] == [2]:
                    return proc.pid
        raise ServerError("printed its ready line, but its process was not found in the sandbox")

    def _watch_tasks(self) -> None:
        """Where no cgroup caps the tree (root, no pids controller): kill the tree once it passes the cap."""
        assert self.limits is not None and self.popen is not None
        while self.popen.poll() is None:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(self.popen.pid)
                tasks = root.num_threads() + sum(p.num_threads() for p in root.children(recursive=True))
                if tasks > self.limits.tasks:
                    self.watchdog_fired = True
                    self.kill()
                    return
            time.sleep(0.02)

    def task_limit_hit(self) -> bool:
        """Whether the server's tree ran into its cap on processes and threads."""
        if self.watchdog_fired or (self.groups is not None and self.groups.task_limit_hit()):
            return True
        if self.runner is None or self.limits is None:
            return False
        deadline = time.monotonic() + 2.0  # a tree that grows without end on a busy machine: let it show it
        while True:
            tasks = 0
            for proc in sandbox.processes_of(self.runner.uid):
                with contextlib.suppress(psutil.Error):
                    tasks += proc.num_threads()
            if tasks >= self.limits.tasks * 0.9:  # RLIMIT_NPROC refuses the rest inside
                return True
            if tasks <= GROWING or time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def output(self) -> str:
        """What the server has written to stdout so far."""
        return self.stdout_path.read_text(encoding="utf-8", errors="replace") if self.stdout_path.exists() else ""

    def output_tail(self, size: int = 65536) -> str:
        """The last size bytes the server wrote to stdout (cheap, even after a flood)."""
        return _tail(self.stdout_path, size)

    def errors(self) -> str:
        """What the server has written to stderr so far."""
        return self.stderr_path.read_text(encoding="utf-8", errors="replace") if self.stderr_path.exists() else ""

    def errors_tail(self, size: int = 65536) -> str:
        """The last size bytes the server wrote to stderr (cheap, even after a flood)."""
        return _tail(self.stderr_path, size)

    def send_signal(self, signum: int, group: bool = False) -> None:
        """Send signum to the server's own process (not to bubblewrap, which passes no signal on), or with
        group to its whole process group, children included, as a terminal's Ctrl-C does."""
        if self.popen is not None and self.popen.poll() is None:
            if self._own() is None:  # inside a sandbox, the server ended: its pid may be another's now
                return
            with contextlib.suppress(ProcessLookupError):
                if group:
                    os.killpg(os.getpgid(self.pid), signum)
                else:
                    os.kill(self.pid, signum)

    def wait(self, timeout: float) -> int | None:
        """The exit status, or None if the server is still running after timeout seconds."""
        assert self.popen is not None
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Send signum and wait up to timeout seconds: the exit status, or None if it is still running."""
        self.send_signal(signum)
        return self.wait(timeout)

    def shrink_send_buffer(self, size: int) -> str:
        """Give the server's listening socket a send buffer of size bytes, as on a network slower than
        loopback (whose buffer grows to megabytes): the sockets it accepts from then on inherit it. The
        grader sets it on a copy of the socket taken with pidfd_getfd, so that nothing of the server needs
        to cooperate; where the grader may not take it (a runner uid's process, and no CAP_SYS_PTRACE, as
        in a Docker container), a probe run as the runner uid takes it. Returns "" when done, else why it
        could not be done here (a limit of the grader's); ServerGone where the server has no listening
        socket of its own to shrink (it closed it, its own process does not hold it, or it ended)."""
        listening = [s for s in self._sockets() if s.state == "LISTEN" and s.local[1] == self.port]
        if len(listening) > 1:  # listening on several addresses: the one it printed
            listening = [s for s in listening if s.local == self.address] or listening
        inodes = sorted({s.inode for s in listening})
        if not inodes:
            raise ServerGone(f"the server's socket listening on port {self.port} could not be found: was it closed?")
        for inode in inodes:  # several only where processes listen on the port side by side (SO_REUSEPORT)
            try:
                fd = _socket_descriptors(self.pid).get(inode)
            except PermissionError as exc:
                if self.runner is None or self.isolation is None:
                    return f"the server's descriptors cannot be taken here ({exc.strerror})"
                found = self._run_as_runner(SHRINK_PROBE, str(self.pid), str(inode), str(size))
                kind, _, why = found.partition(": ")
                if kind == "gone":
                    raise ServerGone(why) from None
                if found:
                    return f"as its runner uid, {found}"
                continue
            except FileNotFoundError:
                raise ServerGone(self._ended()) from None
            if fd is None:
                raise ServerGone("the server's own process does not hold its listening socket")
            why = _set_send_buffer(self.pid, fd, size)
            if why:
                return why
        return ""

    def _run_as_runner(self, probe: str, *args: str) -> str:
        """What a probe (a Python script, standard library only) printed, run as the server's runner uid,
        which may read and take what the server's processes hold; else why it could not run."""
        assert self.runner is not None and self.isolation is not None
        command = [*launcher(self.runner.uid), "--", self.isolation.python, "-I", "-S", "-c", probe, *args]
        try:
            run = subprocess.run(
                command, capture_output=True, text=True, timeout=20, cwd="/", env=sandbox.environment("/", {})
            )
        except subprocess.TimeoutExpired:
            return "the probe did not finish within 20 s"
        if run.returncode != 0:
            return f"the probe failed ({(run.stderr.strip().splitlines() or [f'exit status {run.returncode}'])[-1]})"
        return run.stdout.strip()

    def listeners(self) -> list[tuple[str, int]]:
        """The address of every TCP socket on which the server listens (any of its processes)."""
        return sorted({s.local for s in self._sockets() if s.state == "LISTEN"})

    def open_sockets(self) -> int:
        """How many TCP sockets the server's processes hold open, its listening ones aside (a connection the
        client has closed and the server has not, in CLOSE_WAIT, among them)."""
        return sum(s.state != "LISTEN" for s in self._sockets())

    def lingering(self) -> list[int]:
        """The pids of the processes that hold a connection to the server's port which its client has closed
        and the server has not (CLOSE_WAIT), one per such connection and holder; 0 where the holder cannot
        be seen (as in connections())."""
        holders: dict[int, list[int]] = {}
        return [
            pid
            for s in self._sockets(holders)
            if s.state == "CLOSE_WAIT" and s.local[1] == self.port
            for pid in holders.get(s.inode, [0])
        ]

    def connections(self) -> list[tuple[int, tuple[str, int]]]:
        """(pid, client address) of each connection to the server's port held open by the server: the
        evidence that a client was accepted, and by whom. The pid is that of a process seen holding it, or
        0 where the holder cannot be seen: a runner uid's descriptors without CAP_SYS_PTRACE (a Docker
        container) while it runs more than one process."""
        holders: dict[int, list[int]] = {}
        held = []
        for s in self._sockets(holders):
            if s.state == "ESTABLISHED" and s.local[1] == self.port:
                held += [(pid, s.remote) for pid in holders.get(s.inode, [0])]
        return held

    def _sockets(self, holders: dict[int, list[int]] | None = None) -> list["InetSocket"]:
        """The server's TCP sockets, from /proc/net/tcp and tcp6, which list every socket of the machine's
        network with its owner's uid and need no ptrace. As a runner uid, the server owns every socket of
        that uid that a process holds (every process of the uid is the server's); as the grader's own user,
        those its processes hold. holders, if given, is filled with the pids seen holding each (by inode)."""
        holders = {} if holders is None else holders
        processes = sandbox.processes_of(self.runner.uid) if self.runner else self.tree()
        hidden = []
        for proc in processes:
            try:
                for inode in _socket_descriptors(proc.pid):
                    holders.setdefault(inode, []).append(proc.pid)
            except PermissionError:  # another uid's descriptors, without CAP_SYS_PTRACE
                hidden.append(proc)
            except OSError:  # gone meanwhile
                continue
        if self.runner is None:
            if hidden:
                raise ProbeError(f"the descriptors of the server's process {hidden[0].pid} cannot be read here")
            return [s for s in inet_sockets(network=self.box) if s.inode in holders]
        owned = inet_sockets(self.runner.uid, self.box)
        live = [p.pid for p in processes if sandbox.alive(p)]
        if hidden and len(live) == 1:  # the uid's one process holds them all
            for s in owned:
                holders.setdefault(s.inode, live)
        return owned

    def workers(self) -> list[psutil.Process]:
        """The live descendants that serve clients: all but multiprocessing's own helpers (the resource
        tracker and the fork server, started by the server itself; the fork server's children are workers)."""
        root = self.process()
        try:
            helpers = {p.pid for p in root.children() if any(h in " ".join(_cmdline(p)) for h in HELPERS)}
            return [p for p in root.children(recursive=True) if p.pid not in helpers and sandbox.alive(p)]
        except psutil.NoSuchProcess:
            raise ServerGone(self._ended()) from None

    def zombies(self) -> list[psutil.Process]:
        """The server's children that have ended and that it has not reaped (a child that ends and is
        reaped while we look is none of them: psutil then finds no such process)."""
        found = []
        try:
            children = self.process().children()
        except psutil.NoSuchProcess:
            raise ServerGone(self._ended()) from None
        for child in children:
            with contextlib.suppress(psutil.Error):
                if child.status() == psutil.STATUS_ZOMBIE:
                    found.append(child)
        return found

    def tree(self) -> list[psutil.Process]:
        """Every live process of this server: itself, its descendants, any process of its runner uid, and
        any process with its tag (where its environment can be read: not another uid's without CAP_SYS_PTRACE,
        where the runner uid finds those that left the tree)."""
        found: dict[int, psutil.Process] = {}
        with contextlib.suppress(psutil.Error):
            if (root := self._own()) is not None:
                found[root.pid] = root
                found.update((child.pid, child) for child in root.children(recursive=True))
        for pid in self.groups.pids() if self.groups else ():
            with contextlib.suppress(psutil.Error):
                found.setdefault(pid, psutil.Process(pid))
        for proc in sandbox.processes_of(self.runner.uid) if self.runner else ():
            found.setdefault(proc.pid, proc)
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if proc.pid not in found and proc.environ().get(TAG) == self.tag:
                    found[proc.pid] = proc
        return list(found.values())

    def kill(self) -> list[int]:
        """Kill the whole tree, reap the server, and return the pids that survived (none, normally).
        A runner uid's processes are all killed, however they left the tree; then the uid is free again."""
        if self.popen is None:
            _leave_box(self)
            return []
        if self.popen.returncode is None:  # not reaped yet, so its pid, the session's id, is still the server's
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)  # the session started with the server
        # (once reaped, the pid may be another's: pids wrap, and another grading's server may lead that session)
        for _ in range(3):  # a process may fork while we kill: look again
            procs = self.tree()
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            sandbox.wait_dead(procs, 2)
            if self.popen.poll() is None:
                self.popen.wait(2)
        survivors = [proc.pid for proc in self.tree() if sandbox.alive(proc)]
        if self.runner is not None:
            left = self.runner.release()  # every process of its uid, however it left the tree
            survivors += left
            if not left:
                self.runner = None
        if self.workdir is not None and not survivors:
            self.disk_used = sum(p.stat().st_size for p in self.workdir.rglob("*") if p.is_file())
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self.groups is not None and not survivors:
            self.groups.remove()
        if not survivors:
            _leave_box(self)
        return sorted(set(survivors))


def _tail(path: Path, size: int) -> str:
    """The last size bytes of a file the server writes, as text ("" before it exists)."""
    if not path.exists():
        return ""
    with open(path, "rb") as file:
        file.seek(max(0, file.seek(0, os.SEEK_END) - size))
        return file.read().decode("utf-8", errors="replace")


def rlimits(limits: Limits, uid: int | None) -> dict[str, int]:
    """The rlimits of launch.py for untrusted code under limits (as uid, where given)."""
    chosen = {"RLIMIT_AS": limits.memory, "RLIMIT_FSIZE": limits.output, "RLIMIT_CPU": limits.cpu_seconds}
    chosen["RLIMIT_NOFILE"] = limits.open_files
    if uid is not None:  # a uid of its own: the cap counts its processes and threads, orphans included
        chosen["RLIMIT_NPROC"] = limits.tasks
    elif os.geteuid() != 0:  # counts every process of the user: leave room for those already running
        chosen["RLIMIT_NPROC"] = _user_processes() + limits.tasks
    return chosen


def launcher(
    uid: int | None = None,
    cgroups: Iterable[Path] = (),
    rlimits: dict[str, int] | None = None,
    network: int | None = None,
) -> list[str]:
    """The command of launch.py that enters the network namespace of descriptor network (passed on to it),
    joins cgroups, sets rlimits and becomes uid; the command to exec follows "--"."""
    launch = [sys.executable, "-I", "-S", str(LAUNCH)]
    launch += [f"--netns={network}"] if network is not None else []
    launch += [f"--cgroup={path}" for path in cgroups]
    launch += [f"--rlimit={name}={value}" for name, value in (rlimits or {}).items()]
    return launch + ([f"--uid={uid}"] if uid is not None else [])


TCP_STATES = {"01": "ESTABLISHED", "08": "CLOSE_WAIT", "0A": "LISTEN"}


def inet_sockets(uid: int | None = None, network: Network | None = None) -> list[InetSocket]:
    """The TCP sockets of this network namespace (or of the box network) that a process holds (of uid, if
    given): readable by any user, unlike another user's /proc/PID/fd."""
    found = []
    for family, table in ((socket.AF_INET, "tcp"), (socket.AF_INET6, "tcp6")):
        try:
            text = network.read(table) if network is not None else Path(f"/proc/net/{table}").read_text()
        except FileNotFoundError:  # no IPv6 here
            continue
        for line in text.splitlines()[1:]:  # after the column titles
            fields = line.split()
            if len(fields) < 10 or fields[9] == "0" or (uid is not None and fields[7] != str(uid)):
                continue
            found.append(
                InetSocket(
                    TCP_STATES.get(fields[3], fields[3]),
                    _address(family, fields[1]),
                    _address(family, fields[2]),
                    int(fields[7]),
                    int(fields[9]),
                )
            )
    return found


def _address(family: int, text: str) -> tuple[str, int]:
    """("127.0.0.1", 8080) from /proc/net/tcp's "0100007F:1F90" (the address in words of the host's byte order)."""
    host, port = text.split(":")
    packed = b"".join(int(host[i : i + 8], 16).to_bytes(4, sys.byteorder) for i in range(0, len(host), 8))
    return socket.inet_ntop(family, packed), int(port, 16)


def _socket_descriptors(pid: int) -> dict[int, int]:
    """{socket inode: descriptor} of a process; PermissionError where its descriptors cannot be read
    (another uid's, without CAP_SYS_PTRACE: listing them needs no more than root's DAC override, but
    reading where they lead needs ptrace rights)."""
    found = {}
    folder = f"/proc/{pid}/fd"
    for name in os.listdir(folder):
        with contextlib.suppress(FileNotFoundError):  # closed meanwhile
            link = os.readlink(f"{folder}/{name}")
            if link.startswith("socket:["):
                found[int(link[8:-1])] = int(name)
    return found


def _set_send_buffer(pid: int, fd: int, size: int) -> str:
    """Set SO_SNDBUF on a copy of process pid's descriptor fd, taken with pidfd_getfd: "" when done, else
    why not; PermissionError where this process may not take it."""
    if not hasattr(os, "pidfd_open"):
        return "pidfd_open is not available on this system"
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise ServerGone("the server's process ended") from None
    except OSError as exc:
        return f"pidfd_open failed ({exc.strerror})"
    try:
        copy = ctypes.CDLL(None, use_errno=True).syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if copy < 0:
            error = ctypes.get_errno() or errno.ENOSYS
            if error == errno.EPERM:
                raise PermissionError(error, os.strerror(error))
            if error in (errno.EBADF, errno.ESRCH):  # closed meanwhile, or the process ended
                raise ServerGone("the server let go of its listening socket while it was looked at")
            return f"pidfd_getfd failed ({os.strerror(error)})"
        with socket.socket(fileno=copy) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        return ""
    finally:
        os.close(pidfd)


SHRINK_PROBE = """
import ctypes, errno, os, socket, sys
pid, inode, size = map(int, sys.argv[1:4])
fd = None
try:
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}") == f"socket:[{inode}]":
                fd = int(name)
        except FileNotFoundError:
            pass
    pidfd = os.pidfd_open(pid)
except (FileNotFoundError, ProcessLookupError):
    print("gone: the server's process ended")
    sys.exit()
copy = -1 if fd is None else ctypes.CDLL(None, use_errno=True).syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
if fd is None:
    print("gone: the server's own process does not hold its listening socket")
elif copy < 0 and ctypes.get_errno() in (errno.EBADF, errno.ESRCH):
    print("gone: the server let go of its listening socket while it was looked at")
elif copy < 0:
    print(f"pidfd_getfd failed ({os.strerror(ctypes.get_errno())})")
else:
    socket.socket(fileno=copy).setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
""".replace("SYS_PIDFD_GETFD", str(SYS_PIDFD_GETFD))


def _user_processes() -> int:
    uid = os.getuid()
    count = 0
    for proc in psutil.process_iter(["uids"]):
        with contextlib.suppress(psutil.Error, TypeError):
            count += proc.info["uids"].real == uid
    return count


def _namespace_pids(pid: int) -> list[int]:
    """pid in each PID namespace it belongs to, outermost first (/proc/PID/status, NSpid)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return [int(n) for n in line.split()[1:]]
    return []


def _cmdline(proc: psutil.Process) -> list[str]:
    with contextlib.suppress(psutil.Error):
        return proc.cmdline()
    return []
