"""Start a command under limits, then become it (exec): the limits hold for it and all it starts.

    python -I -S launch.py [--cgroup DIR ...] [--rlimit NAME=VALUE ...] -- COMMAND [ARG ...]

--cgroup DIR: join that control group (its cgroup.procs) before exec; --rlimit: e.g. RLIMIT_AS=4294967296.
Run by the harness (harness.Limits), never by hand. Standard library only, so that it starts fast.
"""

import argparse
import os
import resource
import sys


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cgroup", action="append", default=[])
    parser.add_argument("--rlimit", action="append", default=[])
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")
    for group in args.cgroup:
        with open(os.path.join(group, "cgroup.procs"), "w") as procs:
            procs.write(str(os.getpid()))
    for limit in args.rlimit:
        name, value = limit.split("=")
        resource.setrlimit(getattr(resource, name), (int(value), int(value)))
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
