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
"""

import contextlib
import ctypes
import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from autograder import sandbox

READY = re.compile(r"^Serving on (?P<host>\S+):(?P<port>\d+)\s*$", re.MULTILINE)
TAG = "CONCURRENCY_LAB_TAG"  # environment variable carried by every process of one server
TAG_PREFIX = os.environ.get("CONCURRENCY_LAB_TAG_PREFIX", "")  # lets the kit's tests find their own servers
HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")
GROWING = 64  # tasks of a server tree beyond which task_limit_hit() waits to see whether it reaches the cap


LAUNCH = Path(__file__).with_name("launch.py")
SYS_PIDFD_GETFD = 438  # the same number on every Linux architecture (Linux 5.6 and later)
CGROUP_ROOT = Path("/sys/fs/cgroup")


class ServerError(Exception):
    """The server did not start, or did not behave as a process should (its output tells why)."""


class ProbeError(Exception):
    """The grader cannot see here what a check needs to see of a server: a fault of the grader, not of the
    submission."""


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
    memory: int = 4 << 30  # bytes of address space per process, and of memory for the tree where a cgroup can hold it
    output: int = 64 << 20  # bytes in any one file it writes (its stdout included): a flood stops there
    cpu_seconds: int = 120  # of CPU time per process: an endless loop ends
    open_files: int = 4096  # descriptors per process
    disk: int = 64 << 20  # bytes it may leave in its work folder (and, in a sandbox, in its /tmp)


class ControlGroups:
    """Control groups (cgroup v1 pids and memory, or v2) made for one server tree, where this user may make them."""

    def __init__(self, name: str, limits: Limits):
        self.paths: list[Path] = []
        self.caps_tasks = False
        settings = {
            "pids": {"pids.max": limits.tasks},
            "memory": {"memory.limit_in_bytes": limits.memory},
            "": {"pids.max": limits.tasks, "memory.max": limits.memory},  # v2: one hierarchy
        }
        for controller, own in _own_cgroups().items():
            if controller not in settings:
                continue
            path = (CGROUP_ROOT / controller if controller else CGROUP_ROOT) / own.lstrip("/") / name
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
            for _ in range(50):  # the kernel lets go of killed tasks shortly after they are reaped
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


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
    default none, but still with a cleared environment), and sees only the .py files of its folder."""

    def __init__(
        self,
        script: Path,
        args: list[str],
        log_dir: Path,
        cwd: Path | None = None,
        limits: Limits | None = None,
        isolation: "sandbox.Isolation | None" = None,
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

    @property
    def pid(self) -> int:
        """The server's own process (inside a sandbox, not bubblewrap's)."""
        assert self.popen is not None, "the server was not started"
        return self.server_pid or self.popen.pid

    @property
    def sandboxed(self) -> bool:
        return self.limits is not None and self.isolation is not None and self.isolation.level == "sandbox"

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def process(self) -> psutil.Process:
        return psutil.Process(self.pid)

    def start(self, ready_timeout: float = 10.0) -> "Server":
        """Start the server and wait for its `Serving on HOST:PORT` line; ServerError if it never comes."""
        self.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        files: list[int] = []
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
                    pass_fds=files,
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
                return self
            if self.popen.poll() is not None:
                raise ServerError(f"exited with status {self.popen.returncode} before printing 'Serving on HOST:PORT'")
            time.sleep(0.02)
        raise ServerError(f"printed no 'Serving on HOST:PORT' line within {ready_timeout:g} s")

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
        return [*launcher(uid, self.groups.paths, rlimits(self.limits, uid)), "--", *command]

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
        if not self.stdout_path.exists():
            return ""
        with open(self.stdout_path, "rb") as out:
            out.seek(max(0, out.seek(0, os.SEEK_END) - size))
            return out.read().decode("utf-8", errors="replace")

    def errors(self) -> str:
        """What the server has written to stderr so far."""
        return self.stderr_path.read_text(encoding="utf-8", errors="replace") if self.stderr_path.exists() else ""

    def send_signal(self, signum: int, group: bool = False) -> None:
        """Send signum to the server's own process (not to bubblewrap, which passes no signal on), or with
        group to its whole process group, children included, as a terminal's Ctrl-C does."""
        if self.popen is not None and self.popen.poll() is None:
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
        could not be done here."""
        try:
            listening = [s for s in self._sockets() if s.state == "LISTEN" and s.local[1] == self.port]
            if len(listening) > 1:  # listening on several addresses: the one it printed
                listening = [s for s in listening if s.local == self.address]
            (inode,) = {s.inode for s in listening}
        except ValueError:
            return f"the server's socket listening on port {self.port} could not be found"
        try:
            fd = _socket_descriptors(self.pid).get(inode)
            if fd is None:
                return "the server's own process does not hold its listening socket"
            return _set_send_buffer(self.pid, fd, size)
        except PermissionError as exc:
            if self.runner is None or self.isolation is None:
                return f"the server's descriptors cannot be taken here ({exc.strerror})"
        found = self._run_as_runner(SHRINK_PROBE, str(self.pid), str(inode), str(size))
        return found and f"as its runner uid, {found}"

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
            return [s for s in inet_sockets() if s.inode in holders]
        owned = inet_sockets(self.runner.uid)
        live = [p.pid for p in processes if sandbox.alive(p)]
        if hidden and len(live) == 1:  # the uid's one process holds them all
            for s in owned:
                holders.setdefault(s.inode, live)
        return owned

    def workers(self) -> list[psutil.Process]:
        """The live descendants that serve clients: all but multiprocessing's own helpers (the resource
        tracker and the fork server, started by the server itself; the fork server's children are workers)."""
        root = self.process()
        helpers = {p.pid for p in root.children() if any(h in " ".join(_cmdline(p)) for h in HELPERS)}
        return [p for p in root.children(recursive=True) if p.pid not in helpers and sandbox.alive(p)]

    def zombies(self) -> list[psutil.Process]:
        """The server's children that have ended and that it has not reaped (a child that ends and is
        reaped while we look is none of them: psutil then finds no such process)."""
        found = []
        for child in self.process().children():
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
            root = psutil.Process(self.pid)
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
            return []
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)  # the session started with the server
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
        return sorted(set(survivors))


def rlimits(limits: Limits, uid: int | None) -> dict[str, int]:
    """The rlimits of launch.py for untrusted code under limits (as uid, where given)."""
    chosen = {"RLIMIT_AS": limits.memory, "RLIMIT_FSIZE": limits.output, "RLIMIT_CPU": limits.cpu_seconds}
    chosen["RLIMIT_NOFILE"] = limits.open_files
    if uid is not None:  # a uid of its own: the cap counts its processes and threads, orphans included
        chosen["RLIMIT_NPROC"] = limits.tasks
    elif os.geteuid() != 0:  # counts every process of the user: leave room for those already running
        chosen["RLIMIT_NPROC"] = _user_processes() + limits.tasks
    return chosen


def launcher(uid: int | None = None, cgroups: Iterable[Path] = (), rlimits: dict[str, int] | None = None) -> list[str]:
    """The command of launch.py that joins cgroups, sets rlimits and becomes uid; the command to exec follows "--"."""
    launch = [sys.executable, "-I", "-S", str(LAUNCH)]
    launch += [f"--cgroup={path}" for path in cgroups]
    launch += [f"--rlimit={name}={value}" for name, value in (rlimits or {}).items()]
    return launch + ([f"--uid={uid}"] if uid is not None else [])


TCP_STATES = {"01": "ESTABLISHED", "0A": "LISTEN"}


def inet_sockets(uid: int | None = None) -> list[InetSocket]:
    """The TCP sockets of this network namespace that a process holds (of uid, if given): readable by
    any user, unlike another user's /proc/PID/fd."""
    found = []
    for family, table in ((socket.AF_INET, "/proc/net/tcp"), (socket.AF_INET6, "/proc/net/tcp6")):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            next(lines, None)  # the column titles
            for line in lines:
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
    except OSError as exc:
        return f"pidfd_open failed ({exc.strerror})"
    try:
        copy = ctypes.CDLL(None, use_errno=True).syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if copy < 0:
            error = ctypes.get_errno() or errno.ENOSYS
            if error == errno.EPERM:
                raise PermissionError(error, os.strerror(error))
            return f"pidfd_getfd failed ({os.strerror(error)})"
        with socket.socket(fileno=copy) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        return ""
    finally:
        os.close(pidfd)


SHRINK_PROBE = """
import ctypes, os, socket, sys
pid, inode, size = map(int, sys.argv[1:4])
fd = None
for name in os.listdir(f"/proc/{pid}/fd"):
    try:
        if os.readlink(f"/proc/{pid}/fd/{name}") == f"socket:[{inode}]":
            fd = int(name)
    except FileNotFoundError:
        pass
pidfd = os.pidfd_open(pid)
copy = -1 if fd is None else ctypes.CDLL(None, use_errno=True).syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
if fd is None:
    print("the server's own process does not hold its listening socket")
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
