"""Start a command under limits, then become it (exec): the limits hold for it and all it starts.

    python -I -S launch.py [--netns FD] [--cgroup DIR ...] [--rlimit NAME=VALUE ...] [--uid UID] -- COMMAND [ARG ...]

In this order, everything decided before exec: enter the network namespace that descriptor FD holds (as
root: the grader's box for one check, see harness.Network), and close FD; join each control group (its
cgroup.procs, as root);
set the rlimits (e.g. RLIMIT_AS=4294967296); with --uid, drop every group and become UID (real,
effective and saved, group likewise); then no_new_privs (no setuid program can give privileges back),
and a parent-death signal: if the grader dies, this process dies with it (SIGKILL).
Run by the harness and sandbox modules, never by hand. Standard library only, so that it starts fast.
"""

import argparse
import contextlib
import ctypes
import os
import resource
import signal
import sys

PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
PR_SET_PTRACER, PR_SET_PTRACER_ANY = 0x59616D61, 2**64 - 1  # ((unsigned long) -1)
CLONE_NEWNET = 0x40000000


def prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(ctypes.c_int(option), *(ctypes.c_ulong(v) for v in (value, 0, 0, 0))) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--netns", type=int)
    parser.add_argument("--cgroup", action="append", default=[])
    parser.add_argument("--rlimit", action="append", default=[])
    parser.add_argument("--uid", type=int)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")
    parent = os.getppid()
    if args.netns is not None:
        if ctypes.CDLL(None, use_errno=True).setns(args.netns, CLONE_NEWNET) != 0:
            sys.exit(f"launch: could not enter the network namespace ({os.strerror(ctypes.get_errno())})")
        os.close(args.netns)
    for group in args.cgroup:
        with open(os.path.join(group, "cgroup.procs"), "w") as procs:
            procs.write(str(os.getpid()))
    for limit in args.rlimit:
        name, value = limit.split("=")
        resource.setrlimit(getattr(resource, name), (int(value), int(value)))
    if args.uid is not None:
        os.setgroups([])
        os.setresgid(args.uid, args.uid, args.uid)
        os.setresuid(args.uid, args.uid, args.uid)
        if os.getuid() != args.uid or os.geteuid() != args.uid or os.getgroups() not in ([], [args.uid]):
            sys.exit(f"launch: could not become uid {args.uid}")
    if sys.platform.startswith("linux"):
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid change, which clears it
        if args.uid is not None:  # Yama (ptrace_scope 1, Ubuntu's default): the grader's probes, run as this
            with contextlib.suppress(OSError):  # same uid but not ancestors, may take its sockets (pidfd_getfd)
                prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY)  # EINVAL without Yama: nothing to allow
        if os.getppid() != parent:  # the grader died before the signal was armed
            sys.exit("launch: the grader is gone")
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
