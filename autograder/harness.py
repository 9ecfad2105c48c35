"""Process control, in one place: start a server as a subprocess, wait for its ready line, stop it,
and kill its whole process tree, checking that nothing is left behind.

A server runs in a session of its own, with stdout and stderr going to files (never to a pipe that
nobody drains), and with a tag in its environment that every process it starts inherits: teardown
finds them by that tag even when they have left the server's session or lost their parent.

Untrusted code (a student's server) runs under Limits: a cap on the tasks of its whole tree (the
cgroup pids controller where it can be used, as root ignores RLIMIT_NPROC; RLIMIT_NPROC for other
users; else a watchdog), on memory, on the size of what it writes, and on CPU time.
"""

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

READY = re.compile(r"^Serving on (?P<host>\S+):(?P<port>\d+)\s*$", re.MULTILINE)
TAG = "CONCURRENCY_LAB_TAG"  # environment variable carried by every process of one server
HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


LAUNCH = Path(__file__).with_name("launch.py")
CGROUP_ROOT = Path("/sys/fs/cgroup")


class ServerError(Exception):
    """The server did not start, or did not behave as a process should (its output tells why)."""


@dataclass(frozen=True)
class Limits:
    """Caps for a server's whole process tree."""

    tasks: int = 1024  # processes and threads, together
    memory: int = 4 << 30  # bytes of address space per process, and of memory for the tree where a cgroup can hold it
    output: int = 64 << 20  # bytes in any one file it writes (its stdout included): a flood stops there
    cpu_seconds: int = 120  # of CPU time per process: an endless loop ends


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
    """One server subprocess: `python -u SCRIPT ARGS...`, run in cwd, its output in log_dir."""

    def __init__(
        self, script: Path, args: list[str], log_dir: Path, cwd: Path | None = None, limits: Limits | None = None
    ):
        self.script, self.args, self.log_dir = Path(script).resolve(), list(args), Path(log_dir)
        self.cwd = Path(cwd) if cwd else self.script.parent
        self.limits = limits
        self.tag = uuid.uuid4().hex
        self.groups: ControlGroups | None = None
        self.watchdog_fired = False
        self.stdout_path = self.log_dir / f"{self.script.stem}-{self.tag[:8]}.out"
        self.stderr_path = self.stdout_path.with_suffix(".err")
        self.popen: subprocess.Popen | None = None
        self.host, self.port = "", 0

    @property
    def pid(self) -> int:
        assert self.popen is not None, "the server was not started"
        return self.popen.pid

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def process(self) -> psutil.Process:
        return psutil.Process(self.pid)

    def start(self, ready_timeout: float = 10.0) -> "Server":
        """Start the server and wait for its `Serving on HOST:PORT` line; ServerError if it never comes."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, TAG: self.tag, "PYTHONDONTWRITEBYTECODE": "1"}
        command = [sys.executable, "-u", str(self.script), *self.args]
        if self.limits is not None:
            command = self._limited(command)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.popen = subprocess.Popen(
                command,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        if self.limits is not None and not (self.groups and self.groups.caps_tasks) and os.geteuid() == 0:
            threading.Thread(target=self._watch_tasks, daemon=True, name=f"watchdog {self.tag[:8]}").start()
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            match = READY.search(self.output())
            if match:
                self.host, self.port = match["host"], int(match["port"])
                return self
            if self.popen.poll() is not None:
                raise ServerError(f"exited with status {self.popen.returncode} before printing 'Serving on HOST:PORT'")
            time.sleep(0.02)
        raise ServerError(f"printed no 'Serving on HOST:PORT' line within {ready_timeout:g} s")

    def _limited(self, command: list[str]) -> list[str]:
        """command, started through launch.py under self.limits."""
        assert self.limits is not None
        self.groups = ControlGroups(f"concurrency-lab-{self.tag}", self.limits)
        rlimits = {"RLIMIT_AS": self.limits.memory, "RLIMIT_FSIZE": self.limits.output}
        rlimits["RLIMIT_CPU"] = self.limits.cpu_seconds
        if os.geteuid() != 0:  # counts every process of the user: leave room for those already running
            rlimits["RLIMIT_NPROC"] = _user_processes() + self.limits.tasks
        launch = [sys.executable, "-I", "-S", str(LAUNCH)]
        launch += [f"--cgroup={path}" for path in self.groups.paths]
        launch += [f"--rlimit={name}={value}" for name, value in rlimits.items()]
        return [*launch, "--", *command]

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
        return self.watchdog_fired or (self.groups is not None and self.groups.task_limit_hit())

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

    def send_signal(self, signum: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signum)

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

    def workers(self) -> list[psutil.Process]:
        """The live descendants that serve clients: all but multiprocessing's own helpers (the resource
        tracker and the fork server, started by the server itself; the fork server's children are workers)."""
        root = self.process()
        helpers = {p.pid for p in root.children() if any(h in " ".join(_cmdline(p)) for h in HELPERS)}
        return [p for p in root.children(recursive=True) if p.pid not in helpers and _alive(p)]

    def tree(self) -> list[psutil.Process]:
        """Every live process of this server: itself, its descendants, and any process with its tag."""
        found: dict[int, psutil.Process] = {}
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.pid)
            found[root.pid] = root
            found.update((child.pid, child) for child in root.children(recursive=True))
        for pid in self.groups.pids() if self.groups else ():
            with contextlib.suppress(psutil.Error):
                found.setdefault(pid, psutil.Process(pid))
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if proc.pid not in found and proc.environ().get(TAG) == self.tag:
                    found[proc.pid] = proc
        return list(found.values())

    def kill(self) -> list[int]:
        """Kill the whole tree, reap the server, and return the pids that survived (none, normally)."""
        if self.popen is None:
            return []
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)  # the session started with the server
        for _ in range(3):  # a process may fork while we kill: look again
            procs = self.tree()
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            psutil.wait_procs(procs, timeout=2)
            if self.popen.poll() is None:
                self.popen.wait(2)
        survivors = [proc.pid for proc in self.tree() if _alive(proc)]
        if self.groups is not None and not survivors:
            self.groups.remove()
        return survivors


def _user_processes() -> int:
    uid = os.getuid()
    count = 0
    for proc in psutil.process_iter(["uids"]):
        with contextlib.suppress(psutil.Error, TypeError):
            count += proc.info["uids"].real == uid
    return count


def _cmdline(proc: psutil.Process) -> list[str]:
    with contextlib.suppress(psutil.Error):
        return proc.cmdline()
    return []


def _alive(proc: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return proc.status() != psutil.STATUS_ZOMBIE
    return False
