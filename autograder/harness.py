"""Process control, in one place: start a server as a subprocess, wait for its ready line, stop it,
and kill its whole process tree, checking that nothing is left behind.

A server runs in a session of its own, with stdout and stderr going to files (never to a pipe that
nobody drains), and with a tag in its environment that every process it starts inherits: teardown
finds them by that tag even when they have left the server's session or lost their parent.
"""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil

READY = re.compile(r"^Serving on (?P<host>\S+):(?P<port>\d+)\s*$", re.MULTILINE)
TAG = "CONCURRENCY_LAB_TAG"  # environment variable carried by every process of one server
HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


class ServerError(Exception):
    """The server did not start, or did not behave as a process should (its output tells why)."""


class Server:
    """One server subprocess: `python -u SCRIPT ARGS...`, run in cwd, its output in log_dir."""

    def __init__(self, script: Path, args: list[str], log_dir: Path, cwd: Path | None = None):
        self.script, self.args, self.log_dir = Path(script), list(args), Path(log_dir)
        self.cwd = Path(cwd) if cwd else self.script.parent
        self.tag = uuid.uuid4().hex
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
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.popen = subprocess.Popen(
                [sys.executable, "-u", str(self.script), *self.args],
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
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

    def output(self) -> str:
        """What the server has written to stdout so far."""
        return self.stdout_path.read_text(encoding="utf-8", errors="replace") if self.stdout_path.exists() else ""

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
        return [proc.pid for proc in self.tree() if _alive(proc)]


def _cmdline(proc: psutil.Process) -> list[str]:
    with contextlib.suppress(psutil.Error):
        return proc.cmdline()
    return []


def _alive(proc: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return proc.status() != psutil.STATUS_ZOMBIE
    return False


@contextlib.contextmanager
def running(
    script: Path, args: list[str], log_dir: Path, cwd: Path | None = None, ready_timeout: float = 10.0
) -> Iterator[Server]:
    """A started server, killed with its whole tree afterwards, however the block ends."""
    server = Server(script, args, log_dir, cwd)
    try:
        yield server.start(ready_timeout)
    finally:
        left = server.kill()
        if left:
            raise ServerError(f"processes {left} of {server.script.name} survived SIGKILL")
