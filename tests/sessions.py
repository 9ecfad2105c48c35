"""A command run in a session of its own, and whatever it leaves behind killed with it, safely.

A session's id is its first process's pid. Once that process is reaped, the kernel may give the pid to
another process, which may lead a session of its own (another test's server, or another grading's), so
signalling the old group after the reap can hit a stranger (pids wrap within minutes on a busy machine
with the default pid_max of 32768). Here the first process is waited for without being reaped (waitid
with WNOWAIT: as a zombie, it keeps its pid), its group is killed, and only then is it reaped."""

import contextlib
import os
import signal
import subprocess
import threading
import time

import psutil


class Session:
    """`command` started in a session of its own, its stdout and stderr read as text meanwhile."""

    def __init__(self, command: list[str], merge_stderr: bool = False, **popen) -> None:
        stderr = subprocess.STDOUT if merge_stderr else subprocess.PIPE
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True, **popen
        )
        self._out: list[str] = []
        self._err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(self.process.stdout, self._out), daemon=True)]
        if not merge_stderr:
            self._readers.append(
                threading.Thread(target=self._read, args=(self.process.stderr, self._err), daemon=True)
            )
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, into: list[str]) -> None:
        with contextlib.suppress(ValueError, OSError):
            into.append(stream.read())

    def ended(self, timeout: float) -> bool:
        """Whether the first process ended within timeout seconds (it is left unreaped, as a zombie)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
            if found is not None:
                return True
            time.sleep(0.05)
        return False

    def left(self) -> list[list[str]]:
        """The command lines of the group's processes still running, the first one aside (call before finish)."""
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if proc.pid != self.process.pid and os.getpgid(proc.pid) == self.process.pid:
                    found.append(proc.info["cmdline"])
        return found

    def finish(self) -> tuple[int, str, str]:
        """Kill the session's group (the first process's pid is still held, so the group is this one), reap
        the first process, and return (its exit status, what it printed on stdout, on stderr)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        for reader in self._readers:
            reader.join(10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return self.process.returncode, "".join(self._out), "".join(self._err)


def run(command: list[str], timeout: float, merge_stderr: bool = False, **popen) -> tuple[int, str, str, bool]:
    """(exit status, stdout, stderr, whether it ran past timeout) of command in a session of its own; the
    session is killed at the end, whatever it left running."""
    session = Session(command, merge_stderr, **popen)
    try:
        late = not session.ended(timeout)
    finally:
        status, out, err = session.finish()
    return status, out, err, late
