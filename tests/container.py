"""A Docker-like container for the kit's tests, built on this machine as root: what Gradescope's and
PrairieLearn's graders run in, where neither bubblewrap nor ptrace works.

    private mount and PID namespaces   unshare --mount --pid --fork --mount-proc (the command is PID 1)
    /sys/fs/cgroup                     an empty read-only tmpfs over it
    seccomp, as Docker's default       unshare, setns, and clone with a namespace flag: EPERM;
                                       clone3: ENOSYS (glibc then falls back to clone)
    capabilities                       Docker's 14 default ones: no CAP_SYS_PTRACE, no CAP_SYS_ADMIN
    no_new_privs                       not set (Docker sets it only with --security-opt no-new-privileges)
    half a CPU, on request             a cgroup v1 cpu group (quota 50000 us per 100000 us), joined
                                       before the namespaces, removed afterwards

The filter is loaded while the command is still root with every capability (without no_new_privs,
seccomp wants CAP_SYS_ADMIN, as in Docker, which loads it before it drops capabilities); the
capabilities are cut last, by setpriv, which then execs the command.

This file is also the launcher: the system's /usr/bin/python3, which Debian's python3-seccomp serves,
runs it as a script, so it imports only the standard library at its top.
"""

import contextlib
import ctypes
import functools
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
CGROUPS = "/sys/fs/cgroup"
CPU = Path(CGROUPS) / "cpu"
CAPABILITIES = (
    "chown", "dac_override", "fsetid", "fowner", "mknod", "net_raw", "setgid", "setuid", "setfcap", "setpcap",
    "net_bind_service", "sys_chroot", "kill", "audit_write",
)  # fmt: skip
NAMESPACE_FLAGS = {  # <linux/sched.h>
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8


@functools.cache
def unavailable() -> str:
    """Why the container cannot be built here ("" if it can): what it needs, then a try."""
    if not sys.platform.startswith("linux"):
        return "the container profile needs Linux"
    if os.geteuid() != 0:
        return "the container profile needs root (namespaces, a tmpfs mount, a seccomp filter)"
    for program in ("unshare", "setpriv"):
        if not any(os.access(Path(folder) / program, os.X_OK) for folder in ("/usr/bin", "/bin")):
            return f"{program} (util-linux) is not installed"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} is missing"
    try:
        probe = subprocess.run([SYSTEM_PYTHON, "-I", "-c", "import seccomp"], capture_output=True, timeout=20)
    except subprocess.TimeoutExpired:
        return f"{SYSTEM_PYTHON} did not start within 20 s"
    if probe.returncode != 0:
        return f"{SYSTEM_PYTHON} has no seccomp module: install Debian's python3-seccomp"
    try:  # namespaces may be refused here (inside a container already)
        trial = outside([*prefix(), "true"], timeout=20)
    except subprocess.TimeoutExpired:
        return "the container did not start within 20 s"
    if trial.returncode != 0:
        return f"the container cannot be built here: {(trial.stderr.strip().splitlines() or ['?'])[-1]}"
    return ""


def require() -> None:
    """Skip the calling test, saying why, where the container cannot be built."""
    import pytest

    why = unavailable()
    if why:
        pytest.skip(why)


def prefix(cpu_tasks: Path | None = None, network: bool = True) -> list[str]:
    """The command that runs what follows it inside the container (first joining cpu_tasks, a cpu
    group's tasks file, if given: see half_cpu()); without network, in a network namespace of its own
    with only its loopback, up (as PrairieLearn runs its graders: no network)."""
    launch = [SYSTEM_PYTHON, "-I", str(Path(__file__).resolve())]
    outer = [*launch, "outer", *([f"--tasks={cpu_tasks}"] if cpu_tasks else []), "--"]
    unshare = ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child", *([] if network else ["--net"])]
    caps = ",".join(f"+{cap}" for cap in CAPABILITIES)
    setpriv = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", f"--bounding-set=-all,{caps}", "--"]
    inner = [*launch, "inner", *([] if network else ["--loopback-up"]), "--"]
    return [*outer, *unshare, "--", *inner, *setpriv]


@contextlib.contextmanager
def half_cpu() -> Iterator[Path]:
    """A cgroup v1 cpu group of half a CPU (its tasks file), removed afterwards: Gradescope's default."""
    import pytest

    if not (CPU / "cpu.cfs_quota_us").exists():
        pytest.skip(f"no cgroup v1 cpu controller at {CPU}")
    group = CPU / own_group("cpu").lstrip("/") / f"concurrency-lab-container-{uuid.uuid4().hex[:12]}"
    group.mkdir()
    try:
        (group / "cpu.cfs_period_us").write_text("100000")
        (group / "cpu.cfs_quota_us").write_text("50000")
        yield group / "tasks"
    finally:
        from autograder.harness import remove_group  # the kit's (not this launcher's: only the tests call this)

        remove_group(group, seconds=5.0, busy=kill_tasks)


def kill_tasks(group: Path) -> None:
    """Kill what a cpu group still holds: nothing a test started is left running."""
    with contextlib.suppress(OSError):
        for pid in (group / "tasks").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def own_group(controller: str) -> str:
    """This process's group in a cgroup v1 controller ("/" if none is named)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    return "/"


def run(
    command: list[str], timeout: float, cpu_tasks: Path | None = None, network: bool = True, **options
) -> subprocess.CompletedProcess:
    """Run command inside the container, with its output captured as text; on timeout, kill it and all it
    started (its session; the PID namespace dies with its first process) and raise TimeoutExpired."""
    return outside([*prefix(cpu_tasks, network), *command], timeout, **options)


def outside(command: list[str], timeout: float, **options) -> subprocess.CompletedProcess:
    """Run command as it is, as run() runs it inside: in a session of its own, killed with it at the end
    (whatever the namespace's first process left behind), and TimeoutExpired if it ran past timeout."""
    import sessions  # here, not at the top: this file also runs as the launcher, by a Python without the tests

    status, out, err, late = sessions.run(command, timeout, stdin=subprocess.DEVNULL, **options)
    if late:
        raise subprocess.TimeoutExpired(command, timeout, out, err)
    return subprocess.CompletedProcess(command, status, out, err)


# The launcher: run by /usr/bin/python3, never imported for it.


def load_filter() -> None:
    """Docker's default seccomp rules for namespaces, on a filter that allows everything else."""
    import errno

    import seccomp

    rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    rules.set_attr(seccomp.Attr.CTL_NNP, 0)  # libseccomp sets no_new_privs unless told not to; Docker does not
    rules.add_rule(seccomp.ERRNO(errno.EPERM), "unshare")
    rules.add_rule(seccomp.ERRNO(errno.EPERM), "setns")
    for flag in NAMESPACE_FLAGS.values():  # clone's first argument is its flags on x86-64 and arm64
        rules.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")  # its flags sit in memory, out of seccomp's sight
    rules.load()


def mount_empty_cgroups() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    if libc.mount(b"tmpfs", CGROUPS.encode(), b"tmpfs", flags, b"mode=755,size=4k") != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mounting an empty tmpfs on {CGROUPS}: {os.strerror(error)}")


def loopback_up() -> None:
    """Bring up the loopback of a new network namespace (it starts down), as container runtimes do."""
    import fcntl
    import socket
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))


def launch(argv: list[str]) -> None:
    stage, *rest = argv
    options, command = rest[: rest.index("--")], rest[rest.index("--") + 1 :]
    if stage == "outer":  # still on the host: join the cpu group, so that all it starts is in it
        for option in options:
            Path(option.removeprefix("--tasks=")).write_text(str(os.getpid()))
    elif stage == "inner":  # PID 1 of the new namespaces, root with every capability
        if "--loopback-up" in options:
            loopback_up()
        mount_empty_cgroups()
        load_filter()
    else:
        sys.exit(f"container.py: unknown stage {stage}")
    os.execvp(command[0], command)


if __name__ == "__main__":
    launch(sys.argv[1:])
