"""The Docker-like container of tests/container.py, and the grader in it. Each restriction is shown to hold
inside and not outside (so that the test proves it is the container's doing); then the grader grades the
reference and realistic bugs inside as it does outside, where neither bubblewrap nor ptrace works."""

import errno
import json
import os
import re
import shutil
import socket
import sys
import textwrap
from pathlib import Path

import container
import pytest
from test_bugs import BUGS, title
from test_grader import RUN

from autograder import KIT, SOLUTION
from autograder.harness import inet_sockets

from conftest import leftovers, mutant

DOCKER_CAPABILITIES = 0xA80425FB  # Docker's default set, as /proc/PID/status shows it in a container
CAP_SYS_PTRACE = 1 << 19
UID_LEVEL = re.compile(
    r"servers run (isolated \(a runner uid of their own, no bubblewrap|as a runner uid of their own, but bubblewrap)"
)


def python(code: str) -> list[str]:
    return [sys.executable, "-I", "-c", textwrap.dedent(code)]


def both(command: list[str], timeout: float = 30) -> tuple:
    """(inside, outside): command run in the container and as it is."""
    container.require()
    return container.run(command, timeout), container.outside(command, timeout)


def test_bubblewrap_cannot_make_its_namespaces_inside():
    if not shutil.which("bwrap"):
        pytest.skip("bubblewrap is not installed")
    inside, outside = both(["bwrap", "--ro-bind", "/", "/", "true"])  # as root: clone() with namespace flags
    assert inside.returncode != 0 and "Operation not permitted" in inside.stderr, inside
    assert outside.returncode == 0, outside


def test_unshare_is_refused_inside():
    inside, outside = both(["unshare", "--net", "true"])
    assert inside.returncode != 0 and "Operation not permitted" in inside.stderr, inside
    assert outside.returncode == 0, outside


def test_setns_is_refused_and_clone3_is_missing_inside_while_threads_still_start():
    probe = python("""
        import ctypes, json, os, threading
        libc = ctypes.CDLL(None, use_errno=True)
        net = os.open("/proc/self/ns/net", os.O_RDONLY)
        setns = libc.setns(net, 0) and ctypes.get_errno()  # 0: joined its own network namespace again
        clone3 = libc.syscall(435, None, 0) and ctypes.get_errno()  # an empty argument: EINVAL where it exists
        thread = threading.Thread(target=print, args=("a thread ran",))
        thread.start()
        thread.join()
        print(json.dumps({"setns": setns, "clone3": clone3}))
    """)
    inside, outside = both(probe)
    assert json.loads(inside.stdout.splitlines()[-1]) == {"setns": errno.EPERM, "clone3": errno.ENOSYS}, inside
    assert json.loads(outside.stdout.splitlines()[-1]) == {"setns": 0, "clone3": errno.EINVAL}, outside
    assert "a thread ran" in inside.stdout  # glibc falls back to clone for threads


def test_root_inside_has_dockers_capabilities_no_ptrace_and_no_no_new_privs():
    probe = python("""
        import json, os
        status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines())
        print(json.dumps({key: status[key].strip() for key in ("CapEff", "CapBnd", "CapInh", "CapAmb",
                                                              "NoNewPrivs", "Seccomp")} | {"pid": os.getpid()}))
    """)
    inside, outside = (json.loads(run.stdout) for run in both(probe))
    assert int(inside["CapEff"], 16) == int(inside["CapBnd"], 16) == DOCKER_CAPABILITIES, inside
    assert int(inside["CapInh"], 16) == int(inside["CapAmb"], 16) == 0, inside
    assert inside["NoNewPrivs"] == "0" and inside["Seccomp"] == "2" and inside["pid"] == 1, inside  # PID 1
    assert int(outside["CapEff"], 16) & CAP_SYS_PTRACE and outside["Seccomp"] == "0", outside


def test_root_inside_cannot_read_where_another_uids_descriptors_lead():
    probe = python("""
        import json, os, subprocess, time
        nobody = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "30"])
        try:
            for _ in range(1000):  # until setpriv has become uid 65534 and run sleep (20 s at most)
                if os.stat(f"/proc/{nobody.pid}").st_uid == 65534 and b"sleep" in open(
                    f"/proc/{nobody.pid}/cmdline", "rb"
                ).read():
                    break
                time.sleep(0.02)
            listed = sorted(os.listdir(f"/proc/{nobody.pid}/fd"), key=int)
            try:
                read = os.readlink(f"/proc/{nobody.pid}/fd/{listed[0]}")
            except PermissionError as exc:
                read = exc.strerror
            print(json.dumps({"uid": os.stat(f"/proc/{nobody.pid}").st_uid, "listed": listed, "read": read}))
        finally:
            nobody.kill()
            nobody.wait()
    """)
    inside, outside = (json.loads(run.stdout) for run in both(probe))
    assert inside["uid"] == outside["uid"] == 65534
    assert inside["listed"] and inside["read"] == "Permission denied", inside  # listed: DAC override is enough
    assert outside["read"] == "/dev/null", outside  # its standard input


def test_sys_fs_cgroup_is_empty_and_read_only_inside():
    probe = python("""
        import errno, json, os
        readonly = bool(os.statvfs("/sys/fs/cgroup").f_flag & os.ST_RDONLY)
        made = ""
        if readonly:  # never write to the machine's own cgroups
            try:
                os.mkdir("/sys/fs/cgroup/pids")
                made = "made"
            except OSError as exc:
                made = errno.errorcode[exc.errno]
        print(json.dumps({"entries": os.listdir("/sys/fs/cgroup"), "readonly": readonly, "mkdir": made}))
    """)
    inside, outside = (json.loads(run.stdout) for run in both(probe))
    assert inside == {"entries": [], "readonly": True, "mkdir": "EROFS"}
    assert outside["entries"] and not outside["readonly"], outside


def test_half_a_cpu_holds_the_command_and_its_group_is_removed():
    """The command runs in a cpu group with a quota of half a CPU. (Whether the kernel throttles it is not
    asserted: on a busy machine a process may get less than half a CPU anyway.)"""
    container.require()
    busy = python("""
        import time
        while time.process_time() < 0.2:
            pass
        print(open("/proc/self/cgroup").read())
    """)
    with container.half_cpu() as tasks:
        group = tasks.parent
        quota = [int((group / f"cpu.cfs_{name}_us").read_text()) for name in ("quota", "period")]
        run = container.run(busy, timeout=60, cpu_tasks=tasks)
        stat = dict(line.split() for line in (group / "cpu.stat").read_text().splitlines())
    assert run.returncode == 0, run
    assert quota == [50000, 100000]
    assert re.search(
        rf"^\d+:[\w,]*\bcpu\b[\w,]*:/{re.escape(str(group.relative_to(container.CPU)))}$", run.stdout, re.M
    )
    assert int(stat["nr_periods"]) > 0, stat  # the quota's timer ran: the group's tasks ran under it
    assert not group.exists()


def test_the_sockets_of_the_machine_are_listed_with_their_owner_and_inode():
    """What the grader reads where it may not read a runner uid's descriptors: /proc/net/tcp and tcp6."""
    families = [(socket.AF_INET, "127.0.0.1")] + [(socket.AF_INET6, "::1")] * socket.has_ipv6
    listeners = []
    try:
        for family, host in families:
            listeners.append(socket.socket(family))
            listeners[-1].bind((host, 0))
            listeners[-1].listen()
        found = {s.inode: s for s in inet_sockets(os.getuid())}
        for sock in listeners:
            listed = found[os.fstat(sock.fileno()).st_ino]
            assert (listed.state, listed.local, listed.uid) == ("LISTEN", sock.getsockname()[:2], os.getuid())
    finally:
        for sock in listeners:
            sock.close()


def grade(where: str, submission: Path, tmp_path: Path, *options: str, timeout: float = 300) -> tuple[dict, str]:
    """(results.json, what was printed) of one grading: in the container, or outside it (at the isolation
    level this machine gives, or with --isolation none)."""
    out = tmp_path / "results.json"
    command = [sys.executable, "-m", "autograder", "grade", str(submission), "--json", str(out), *options]
    env = {**os.environ, "COLUMNS": "200", "CONCURRENCY_LAB_TAG_PREFIX": RUN}
    if where == "container":
        container.require()
        run = container.run(command, timeout, cwd=KIT, env=env)
        assert UID_LEVEL.search(run.stdout), run.stdout[-3000:]  # bubblewrap failed: runner uids alone
    else:
        run = container.outside(
            command + (["--isolation", "none"] if where == "none" else []), timeout, cwd=KIT, env=env
        )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert leftovers(RUN) == []
    return json.loads(out.read_text()), run.stdout


PROBED = ["--check", "listens", "--check", "slow_reader", "--check", "mechanism", "--check", "start_method"]


@pytest.mark.parametrize("where", ["container", "bubblewrap", "none"])
def test_the_checks_that_look_into_the_server_give_the_reference_full_points(tmp_path, where):
    """The checks that read a server's sockets, descriptors and processes, in each place they may run."""
    if where == "bubblewrap" and not (shutil.which("bwrap") and os.geteuid() == 0):
        pytest.skip("bubblewrap and root are needed for the bubblewrap level")
    results, printed = grade(where, SOLUTION, tmp_path, *PROBED, "--mode", "multiprocess", "--mode", "threadpool")
    assert "grader fault" not in printed, printed[-3000:]
    assert len(results["tests"]) == 7, results["tests"]  # 4 checks in multiprocess; the send buffer in threadpool
    assert all(t["status"] == "passed" and t["score"] == t["max_score"] for t in results["tests"]), results["tests"]
    if where == "bubblewrap":
        assert "servers run isolated (a runner uid of their own, bubblewrap;" in printed


PROBED_BUGS = [  # one bug per probe: the send buffer, the listeners, who holds a client, how children start
    "send() instead of sendall()",
    "binding every interface",
    "target=handle_client(conn, addr)",
    "multiprocessing.Process instead of the context's",
]


@pytest.mark.parametrize("where", ["container", "none"])  # the bubblewrap level: test_bugs.py
@pytest.mark.parametrize("bug", [bug for bug in BUGS if bug.name in PROBED_BUGS], ids=str)
def test_a_bug_loses_the_points_of_its_check_in_the_container_as_outside(tmp_path, bug, where):
    submission = mutant(tmp_path / "sub", bug.file, bug.old, bug.new)
    options = ["--mode", bug.mode, "--check", bug.check, "--check", bug.control, "--jobs", "1"]
    results, printed = grade(where, submission, tmp_path, *options)
    mine = [t for t in results["tests"] if title(bug.check) in t["name"]]
    others = [t for t in results["tests"] if t not in mine]
    assert mine and others, results["tests"]
    lost = [t for t in mine if t["score"] < t["max_score"]]
    assert any(bug.feedback in t["output"] for t in lost), [t["output"] for t in mine]
    assert all(t["score"] == t["max_score"] for t in others), others
    assert "grader fault" not in printed, printed[-3000:]


ESCAPE = (  # a child that leaves the server's session and outlives it
    "    import os, time\n"
    "    if os.fork() == 0:\n"
    "        os.setsid()\n"
    "        if os.fork() == 0:\n"
    "            time.sleep(600)\n"
    "        os._exit(0)\n"
    "    while (client"
)


@pytest.mark.parametrize("where", ["container", "none"])  # in bubblewrap, its PID namespace ends with the server
def test_a_process_that_outlives_the_server_is_seen_in_the_container_as_outside(tmp_path, where):
    """Its environment (the server's tag) cannot be read inside: the runner uid finds it."""
    submission = mutant(tmp_path / "sub", "single_server.py", "    while (client", ESCAPE)
    results, printed = grade(where, submission, tmp_path, "--mode", "single", "--check", "graceful")
    (shutdown,) = results["tests"]
    assert shutdown["score"] == 0 and "processes of the server were still running" in shutdown["output"], shutdown
    assert "grader fault" not in printed, printed[-3000:]


def test_the_reference_scores_100_in_the_container_with_no_grader_fault(tmp_path):
    results, printed = grade("container", SOLUTION, tmp_path)
    lost = {t["name"]: t["output"] for t in results["tests"] if t["score"] < t["max_score"]}  # what the check saw
    assert results["score"] == 100, lost
    assert all(t["status"] == "passed" for t in results["tests"]), [
        t for t in results["tests"] if t["status"] != "passed"
    ]
    assert "Concurrency Lab: 100 / 100 points" in printed and "Optional part, beside the 100: 46 / 46" in printed
    assert "grader fault" not in printed
