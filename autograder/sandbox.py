"""Where a student's server runs, and as whom: the isolation of untrusted code, decided once per grading.

A submission is hostile until proven otherwise. The grader (the keeper) stays outside; each server runs

- as a runner uid of its own (when the grader is root): a uid from a range kept for the kit, one per
  running server, claimed with a lock so that gradings side by side never share one, with no
  supplementary groups and no_new_privs. Its processes are counted (RLIMIT_NPROC) and killed by that
  uid, which no setsid, execve, environment change or cgroup move escapes;
- inside bubblewrap (where it works): its own PID namespace, whose init dies with the grader and takes
  every process of the namespace with it; a read-only view of the system's programs and libraries only
  (not the kit, the course, the results, /root or /home); a work folder and /tmp on size-capped tmpfs;
  a cleared environment.

The level reached, best first:
  sandbox  bubblewrap, and a runner uid when the grader is root: isolated.
  uid      root without a working bubblewrap: a runner uid only; isolated only if that uid can read none
           of the places the grader knows to be private (the kit, the submission, the results, the
           working folder), which is checked, not assumed.
  none     not isolated: a submission could alter the result (fine on a student's own computer).

The same view, set up by the grader, holds the kernel of a student's notebook (notebook.py). A course
chooses how much it accepts where bubblewrap cannot work (notebook.CHOICES); `course grade` passes a
course set to "uid" on to the grader as AT_LEAST, which turns the level "none" into a refusal.
"""

import contextlib
import fcntl
import functools
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

UID_BASE = int(os.environ.get("CONCURRENCY_LAB_UID_BASE", "640000"))  # runner uids: UID_BASE ... UID_BASE + SLOTS - 1
SLOTS = 64
BWRAP = os.environ.get("CONCURRENCY_LAB_BWRAP") or shutil.which("bwrap") or "/usr/bin/bwrap"  # tests name a missing one
SYSTEM_PYTHON = "/usr/bin/python3"
WORK = "/work"  # the server's working folder inside the sandbox
PATH = "/usr/local/bin:/usr/bin:/bin"
ETC = ("/etc/hosts", "/etc/nsswitch.conf", "/etc/localtime", "/etc/passwd", "/etc/group")
NOT_ISOLATED = "not isolated: a submission could alter this result"
AT_LEAST = "CONCURRENCY_LAB_AT_LEAST"  # "uid": detect() refuses to run servers as the grader (never loosens)


class IsolationError(Exception):
    """Isolation was required and cannot be had here (the message says why and what to install)."""


@dataclass
class Isolation:
    """How servers of one grading run: the level, the interpreter they run under, and why not better."""

    level: str  # "sandbox", "uid" or "none"
    python: str  # the interpreter of the servers
    isolated: bool
    reason: str = ""  # what keeps the level down, for the output
    tmpfs_size: int = 32 << 20  # bytes of each of the sandbox's two tmpfs (its work folder and /tmp)

    @property
    def runner_uids(self) -> bool:
        return self.level in ("sandbox", "uid") and os.geteuid() == 0

    def describe(self) -> str:
        """How the servers run, in one line: as whom, and on which network."""
        if self.level == "sandbox":
            who = "a runner uid of their own, " if self.runner_uids else ""
            return f"servers run isolated ({who}bubblewrap; {self.python}); {self.network}"
        if self.level == "uid" and self.isolated:
            return f"servers run isolated (a runner uid of their own, no bubblewrap; {self.python}); {self.network}"
        if self.level == "uid":
            return f"servers run as a runner uid of their own, but {self.reason}; {self.network}"
        return f"servers run as you ({self.reason})"

    @property
    def network(self) -> str:
        """Whether each check's servers get a network of their own, in words."""
        from autograder.harness import network_isolation  # process control stays in one place

        why = network_isolation()
        return f"the machine's loopback shared by all servers ({why})" if why else "each check in a network of its own"

    @property
    def warning(self) -> str:
        """What results.json and a grader's output say when the servers are not isolated ("" if they are)."""
        return "" if self.isolated else f"{NOT_ISOLATED}; {self.describe()}"


TURNED_OFF = Isolation("none", sys.executable, False, "isolation turned off")


@dataclass
class Runner:
    """A claimed runner uid: its lock is held until release()."""

    uid: int
    lock: int = field(repr=False)

    def release(self) -> list[int]:
        """Kill every process of the uid, remove what it left in the shared temporary folders, then free it;
        the pids that survived (then the uid stays held, its files too)."""
        survivors = kill_uid(self.uid)
        if not survivors:
            remove_files_of(self.uid)
            with contextlib.suppress(OSError):
                os.close(self.lock)
        return survivors


def _own_dir(folder: Path, mode: int) -> Path:
    """folder, made with mode if it is missing, and verified: this user's, a folder (no link), its mode."""
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=mode)
        folder.chmod(mode)  # whatever the umask
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) != mode:
        raise IsolationError(f"{folder} is not a folder of this user with mode {mode:o}: remove it")
    return folder


def _lock_dir() -> Path:
    """A folder of root's alone for the runner locks (never one another user made or could swap)."""
    return _own_dir(Path("/tmp/concurrency-lab-runners"), 0o700)  # one for the machine, whatever TMPDIR a grading has


def runners_dir() -> Path:
    """A folder of root's that runner uids may pass through and not list: the folders of runners without
    bubblewrap (notebook.py) lie in it, each of its runner's alone, reachable whatever TMPDIR a grading has."""
    return _own_dir(Path("/tmp/concurrency-lab-runner-homes"), 0o711)


def claim_runner() -> Runner:
    """A runner uid that no other grading holds, with nothing of an earlier grading left running."""
    folder = _lock_dir()
    for slot in range(SLOTS):
        uid = UID_BASE + slot
        fd = os.open(folder / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if not kill_uid(uid):  # what a killed grading may have left: this uid runs nothing but the kit's servers
            remove_files_of(uid)  # and nothing it wrote is there for the next submission to read or change
        return Runner(uid, fd)
    raise IsolationError(f"all {SLOTS} runner uids from {UID_BASE} are in use by other gradings")


SHARED_TEMP = ("/tmp", "/var/tmp", "/dev/shm")  # where a runner uid without a sandbox of its own can write


def remove_files_of(uid: int) -> list[str]:
    """Remove what uid owns at the top of the shared temporary folders (files, FIFOs, sockets, links, and
    folders with all they hold), never following a link; the paths removed. Run only once none of the uid's
    processes is left, so that nothing it owns moves meanwhile."""
    removed = []
    for top in SHARED_TEMP:
        with contextlib.suppress(OSError):
            entries = list(os.scandir(top))
        for entry in entries if os.path.isdir(top) else []:
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)  # fd-based on Linux: a link inside is removed, not followed
                else:
                    os.unlink(entry.path)
                removed.append(entry.path)
    return removed


def processes_of(uid: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["uids"]):
        with contextlib.suppress(psutil.Error, TypeError):
            if uid in proc.info["uids"]:
                found.append(proc)
    return found


def kill_uid(uid: int, attempts: int = 20) -> list[int]:
    """SIGKILL every process of uid, again until none is left; the pids still alive (none, normally)."""
    for _ in range(attempts):
        running = [p for p in processes_of(uid) if p.pid != os.getpid() and alive(p)]
        if not running:
            return []
        for proc in running:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        wait_dead(running, 0.5)
    return [p.pid for p in processes_of(uid) if alive(p)]


def wait_dead(procs: list[psutil.Process], timeout: float) -> None:
    """Wait until every process is gone or a zombie. (psutil.wait_procs waits until they are gone, and a
    killed process that is not our child stays a zombie until the machine's init reaps it.)"""
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.01)


def alive(proc: psutil.Process) -> bool:
    """Whether proc still runs (a zombie has ended)."""
    with contextlib.suppress(psutil.Error):
        return proc.status() != psutil.STATUS_ZOMBIE
    return False


def others_can_run(path: str) -> bool:
    """Whether a user with no relation to the file's owner and group can execute path (every folder
    above it searchable, the file itself executable)."""
    real = Path(os.path.realpath(path))
    with contextlib.suppress(OSError):
        if not real.stat().st_mode & stat.S_IXOTH:
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in real.parents)
    return False


@functools.cache
def python_version(python: str) -> tuple[int, int]:
    """(major, minor) of the interpreter python, (0, 0) where it does not run. Asked once: its answer does not
    change, and the wait is long: a busy machine must not make an interpreter look missing (with 10 s, a
    `course grade` in the test suite once refused to run, naming a present python3 3.11 "missing")."""
    with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
        out = subprocess.run(
            [python, "-I", "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        major, minor = map(int, out.split())
        return major, minor
    return (0, 0)


def server_python(runner_uids: bool) -> str:
    """The interpreter of the servers: this environment's own where the runner can execute it, else the
    system's python3 if it is 3.11 or newer. A venv made from a Python under a private home folder is
    not executable by another uid."""
    own = os.path.realpath(sys.executable)
    if not runner_uids or others_can_run(own):
        return own
    if others_can_run(SYSTEM_PYTHON) and python_version(SYSTEM_PYTHON) >= (3, 11):
        return os.path.realpath(SYSTEM_PYTHON)
    raise IsolationError(
        f"no Python that a runner uid may execute: {own} is in a private folder and {SYSTEM_PYTHON} "
        "is missing or older than 3.11 (install python3 3.11 or newer from the system's packages)"
    )


def view(python: str, tmpfs_size: int, readable: tuple[str, ...] = (), chdir: str = WORK) -> list[str]:
    """bubblewrap's options for the server's view: the system's programs read-only, private /proc, /dev,
    /tmp and work folder, nothing else of the machine's files (but the readable paths, read-only)."""
    args = ["--unshare-pid", "--unshare-ipc", "--die-with-parent", "--new-session", "--clearenv"]
    for top in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    prefix = _prefix(python)
    if prefix and not prefix.startswith("/usr/"):  # an interpreter outside /usr (pyenv, a conda base, ...)
        readable = (prefix, *readable)
    args += ["--perms", "0755", "--dir", "/etc"]  # searchable also where bubblewrap runs as root (notebook.py)
    for path in ETC:
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--perms", "1777", "--size", str(tmpfs_size), "--tmpfs", "/tmp"]
    args += ["--size", str(tmpfs_size), "--tmpfs", WORK]
    made = set()
    for path in readable:  # the folders above it made searchable (bubblewrap would make them 0700)
        for parent in reversed(Path(path).parents[:-1]):
            if str(parent) not in made and str(parent) not in ("/usr", "/tmp", WORK):
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(str(parent))
        args += ["--ro-bind", path, path]
    return [*args, "--chdir", chdir]


def _prefix(python: str) -> str:
    """The installation folder of an interpreter (…/bin/python3.11 → …), where its standard library lies."""
    return str(Path(python).resolve().parent.parent)


def environment(home: str, tag: dict[str, str]) -> dict[str, str]:
    """The whole environment of a server: nothing of the grader's or the instructor's."""
    return {"PATH": PATH, "LANG": "C.UTF-8", "HOME": home, "PYTHONDONTWRITEBYTECODE": "1", **tag}


def _launch(uid: int | None) -> list[str]:
    from autograder.harness import launcher  # process control stays in one place

    return launcher(uid)


def bwrap_works(python: str, uid: int | None, tmpfs_size: int = 32 << 20) -> str:
    """ "" if a server could start inside bubblewrap here (as uid, where given), else why not."""
    if not os.path.exists(BWRAP):
        return "bubblewrap is not installed; it is the system package bubblewrap"
    command = [*_launch(uid), "--", BWRAP, *view(python, tmpfs_size), python, "-I", "-c", "import socket"]
    with contextlib.suppress(subprocess.TimeoutExpired):
        run = subprocess.run(command, capture_output=True, text=True, timeout=20, env=environment(WORK, {}))
        if run.returncode == 0:
            return ""
        last = (run.stderr.strip().splitlines() or [f"exit status {run.returncode}"])[-1]
        return f"bubblewrap does not work here ({last})"
    return "bubblewrap did not answer within 20 s"


PROBE = """
import json, os, sys
readable = []
for path in json.loads(sys.argv[1]):
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").close()
        readable.append(path)
    except OSError:
        pass
print(json.dumps(readable))
"""


def readable_by(uid: int, python: str, private: list[Path]) -> list[str]:
    """Which of the private paths uid can read (list or open)."""
    paths = list(dict.fromkeys(str(p) for p in private if p.exists()))  # each once (the kit may be the working folder)
    command = [*_launch(uid), "--", python, "-I", "-c", PROBE, json.dumps(paths)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=20, env=environment("/", {}), cwd="/")
    if run.returncode != 0:
        return [f"(the probe failed: {run.stderr.strip()[-200:]})"]
    return json.loads(run.stdout)


def detect(private: list[Path], tmpfs_size: int = 32 << 20) -> Isolation:
    """The best isolation this machine gives the servers of a grading; private: the places a server must
    not read (checked where only a runner uid isolates). IsolationError where AT_LEAST is "uid" and the
    servers would run as the grader."""
    found = _detect(private, tmpfs_size)
    if os.environ.get(AT_LEAST) == "uid" and found.level == "none":
        raise IsolationError(f"a runner uid at least is required ({AT_LEAST}=uid), and {found.describe()}")
    return found


def _detect(private: list[Path], tmpfs_size: int) -> Isolation:
    root = os.geteuid() == 0
    if not sys.platform.startswith("linux"):
        return Isolation("none", sys.executable, False, "no bubblewrap on this system", tmpfs_size)
    try:
        python = server_python(root)
        runner = claim_runner() if root else None
    except IsolationError as exc:
        return Isolation("none", sys.executable, False, str(exc), tmpfs_size)
    try:
        why = bwrap_works(python, runner.uid if runner else None, tmpfs_size)
        if not why:
            return Isolation("sandbox", python, True, "", tmpfs_size)
        if runner is None:
            return Isolation("none", sys.executable, False, why, tmpfs_size)
        readable = readable_by(runner.uid, python, private)
        if readable:
            return Isolation("uid", python, False, f"{why}, and it can read {', '.join(readable)}", tmpfs_size)
        return Isolation("uid", python, True, why, tmpfs_size)
    finally:
        if runner is not None:
            runner.release()
