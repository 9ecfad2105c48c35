"""Hostile submissions against the real grader: each attack that once worked against a grader running
student code as its own user, made again. The grade must not be forged, the kit and the course must stay
unchanged, no secret may reach the feedback, and nothing of the submission may be left running; with
cgroups writable, and with cgroups hidden (as in a container, where only the runner uid's RLIMIT_NPROC
caps the processes)."""

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from autograder import ASSIGNMENT, KIT, SERVER_FILES, SOLUTION
from autograder.checks.probes import eventually

from conftest import leftovers, marker, mutant

SINGLE = ("--mode", "single")
RUN = f"attack-{os.getpid()}-"  # the tag prefix of every server these tests' gradings start
MARKER = marker(RUN)  # ... and the mark of the processes of their attacks
SECRET = "instructor-token-4f1c9e"
isolating = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("bwrap"), reason="runner uids need root, the sandbox bubblewrap"
)
pytestmark = isolating


def hostile(folder: Path, attack: str, base: Path = ASSIGNMENT) -> Path:
    """A submission: base's files, with attack (Python source) run when single_server.py's serve() starts.
    From the unfilled skeleton, its honest score is 0."""
    folder.mkdir(parents=True)
    for name in SERVER_FILES:
        shutil.copy(base / name, folder / name)
    attack = attack.replace("attack-marker", MARKER)  # this worker's own mark, for leftovers() and the clean-ups
    server = (folder / "single_server.py").read_text()
    body = "\n".join(
        ["    def attack():", textwrap.indent(textwrap.dedent(attack).strip(), " " * 8), "    attack()", ""]
    )
    start = server.index("    while (client := listener.accept())")  # the given accept loop, in both copies
    (folder / "single_server.py").write_text(server[:start] + body + server[start:])
    return folder


def grader_command(cgroups: str, *args: object) -> list[str]:
    command = [sys.executable, "-m", "autograder", "grade", *map(str, args)]
    if cgroups == "hidden":  # a private mount namespace where /sys/fs/cgroup is an empty read-only tmpfs
        mount = 'mount -t tmpfs -o ro,size=4k tmpfs /sys/fs/cgroup && exec "$@"'
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, "sh", *command]
    return command


def run_grader(cgroups: str, *args: object, env: dict | None = None, timeout: float = 120, cwd: Path = KIT):
    environment = {
        **os.environ,
        "COLUMNS": "200",
        "CONCURRENCY_LAB_TAG_PREFIX": RUN,
        "PYTHONPATH": str(KIT),
        **(env or {}),
    }
    return subprocess.run(
        grader_command(cgroups, *args), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environment
    )


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and ".venv" not in p.parts and ".git" not in p.parts
    }


FORGE = """
import json, os, signal
forged = {"score": 100, "tests": [], "output": "forged"}
# TARGET: the results file of the grading under attack (only that grader is attacked: other tests run beside it)
pids = [os.getppid()] + [int(p) for p in os.listdir("/proc") if p.isdigit()]
for pid in pids:
    try:
        argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
    except OSError:
        continue
    if b"--json" in argv and argv[argv.index(b"--json") + 1].decode() == TARGET:
        try:
            json.dump(forged, open(argv[argv.index(b"--json") + 1].decode(), "w"))
        except OSError:
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
"""


@pytest.mark.parametrize("cgroups", ["writable", "hidden"])
def test_a_submission_cannot_forge_its_result_nor_kill_the_grader(tmp_path, cgroups):
    out = tmp_path / "results" / "results.json"
    submission = hostile(tmp_path / "sub", f"TARGET = {str(out)!r}\n" + FORGE)
    out.parent.mkdir()
    run = run_grader(cgroups, submission, "--mode", "single", "--check", "echo", "--json", out)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["score"] == 0 and results["tests"] and "forged" not in results["output"]
    assert "servers run isolated (a runner uid of their own, bubblewrap" in " ".join(run.stdout.split())
    assert leftovers(RUN) == []


def test_the_forgery_is_real_it_works_without_isolation(tmp_path):
    out = tmp_path / "results" / "results.json"
    submission = hostile(tmp_path / "sub", f"TARGET = {str(out)!r}\n" + FORGE)
    out.parent.mkdir()  # as Gradescope's /autograder/results is
    run = run_grader(
        "writable", submission, "--mode", "single", "--check", "echo", "--json", out, "--isolation", "none"
    )
    assert run.returncode == -signal.SIGKILL and json.loads(out.read_text())["output"] == "forged"


DAEMON = """
import json, os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for line in open("/proc/self/cgroup").read().splitlines():  # out of every control group
            for controller in line.split(":")[1].split(",") or [""]:
                try:
                    open(f"/sys/fs/cgroup/{controller}/cgroup.procs", "w").write(str(os.getpid()))
                except OSError:
                    pass
        code = (
            "import json, time\\n"
            "for _ in range(300):\\n"
            "    try: json.dump({'score': 100, 'tests': []}, open(%r, 'w'))\\n"
            "    except OSError: pass\\n"
            "    time.sleep(0.2)  # attack-marker\\n"
        ) % RESULTS
        os.execve("/usr/bin/python3", ["python3", "-c", code, "attack-marker"], {})
    os._exit(0)
"""


@pytest.mark.parametrize("cgroups", ["writable", "hidden"])
def test_a_daemon_that_escapes_the_tree_does_not_outlive_grading(tmp_path, cgroups):
    out = tmp_path / "results" / "results.json"
    submission = hostile(tmp_path / "sub", f"RESULTS = {str(out)!r}\n" + DAEMON)
    run = run_grader(cgroups, submission, "--mode", "single", "--check", "echo", "--json", out)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert leftovers(RUN) == []
    time.sleep(0.5)  # a daemon that survived would rewrite the results now
    assert json.loads(out.read_text())["score"] == 0


def forged(out: Path) -> bool:
    """Whether out holds the daemon's forgery (it rewrites the file: a read may meet it empty)."""
    try:
        return json.loads(out.read_text())["score"] == 100
    except (OSError, ValueError):
        return False


def test_the_daemon_is_real_it_outlives_a_grading_without_isolation(tmp_path):
    out = tmp_path / "results" / "results.json"
    submission = hostile(tmp_path / "sub", f"RESULTS = {str(out)!r}\n" + DAEMON)
    try:
        run = run_grader(
            "writable", submission, "--mode", "single", "--check", "echo", "--json", out, "--isolation", "none"
        )
        assert run.returncode == 0
        assert eventually(lambda: forged(out), 5.0)  # rewritten after the grader had ended
    finally:
        for proc in psutil.process_iter(["cmdline"]):
            if MARKER in " ".join(proc.info["cmdline"] or []):
                proc.kill()  # the daemon this test started, found by its marker


def test_a_submission_cannot_change_the_kit_for_the_next_student(tmp_path):
    before = digest(KIT)
    targets = [KIT / "locustfile.py", KIT / "autograder" / "marks.py", KIT / "autograder" / "plugin.py"]
    attack = f"""
for path in {[str(t) for t in targets]!r}:
    try:
        with open(path, "a") as file:
            file.write("\\nraise SystemExit('poisoned')\\n")
    except OSError as exc:
        print("could not poison", path, exc)
"""
    submission = hostile(tmp_path / "sub", attack)
    run = run_grader("writable", submission, "--mode", "single", "--check", "echo", "--check", "load")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert digest(KIT) == before
    # the next submission, the unfilled skeleton, is graded by the same kit as ever
    after = run_grader("writable", ASSIGNMENT, "--mode", "single", "--check", "echo", "--check", "load")
    assert "Concurrency Lab: 0 / 2 points" in after.stdout and after.returncode == 0  # echo 1, load 1
    assert leftovers(RUN) == []


def semaphores() -> set[int]:
    """The keys of the machine's System V semaphore sets (of this IPC namespace)."""
    lines = Path("/proc/sysvipc/sem").read_text().splitlines()[1:]
    return {int(line.split()[0]) for line in lines}


def test_a_server_leaves_no_ipc_object_for_the_next_one(tmp_path):
    """A System V semaphore outlives the process and the uid that made it: a server that finds its own from
    before knows it is graded again (and could signal to another student's server). Each server has an IPC
    namespace of its own: the set it makes is gone with it, and the machine's are never its to see."""
    key = 0x4C41_0000 + os.getpid() % 0xFFFF
    attack = f"""
import ctypes, sys
made = ctypes.CDLL(None, use_errno=True).semget({key}, 1, 0o1000 | 0o2000 | 0o600)  # IPC_CREAT | IPC_EXCL
print("semget", made, ctypes.get_errno(), file=sys.stderr, flush=True)
"""
    submission = hostile(tmp_path / "sub", attack)
    logs = tmp_path / "logs"
    run = run_grader("writable", submission, "--mode", "single", "--check", "echo", "--keep-logs", logs)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    said = [line for p in logs.rglob("*") if p.is_file() for line in p.read_text().splitlines() if "semget" in line]
    assert said and all(int(line.split()[1]) >= 0 for line in said), said  # made, each time: none was there
    assert key not in semaphores()  # and none left here
    assert leftovers(RUN) == []


def test_no_secret_of_the_instructor_reaches_the_feedback(tmp_path):
    course = tmp_path / "course"
    (course / "source" / "lab").mkdir(parents=True)
    shutil.copy(SOLUTION / "handler.py", course / "source" / "lab" / "handler.py")
    (course / "gradebook.db").write_text("gradebook")
    os.chmod(tmp_path, 0o755)  # an instructor's course folder is often readable by everyone
    attack = f"""
import glob, os, sys
found = [os.environ.get("INSTRUCTOR_TOKEN", "")]
for path in ["/proc/1/environ", f"/proc/{{os.getppid()}}/environ", {str(KIT / "solution" / "handler.py")!r},
             *glob.glob({str(course)!r} + "/**/*", recursive=True)]:
    try:
        found.append(open(path, "rb").read().decode(errors="replace"))
    except OSError:
        pass
try:
    open({str(course / "gradebook.db")!r}, "w").write("overwritten")
except OSError:
    pass
leak = " ".join(" ".join(found).split())
sys.stderr.write(leak[-3000:] + "\\n")
print(leak[-3000:])
raise SystemExit(leak[-3000:])
"""
    submission = hostile(tmp_path / "sub", attack)
    out = tmp_path / "results.json"
    run = run_grader(
        "writable", submission, "--mode", "single", "--check", "echo", "--json", out,
        env={"INSTRUCTOR_TOKEN": SECRET}, cwd=course,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    printed = out.read_text() + run.stdout + run.stderr
    assert "printed on stderr" in printed  # the submission's own output does come back
    assert SECRET not in printed and "BEGIN SOLUTION" not in printed and "build_reply(request)" not in printed
    assert (course / "gradebook.db").read_text() == "gradebook"
    assert leftovers(RUN) == []


ORPHANS = """
import os, sys, time
forked = 0
for _ in range(1100):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.setsid()
        os.execve("/usr/bin/sleep", ["attack-marker", "120"], {})
    forked += 1
print(f"forked {forked}", flush=True)
"""


@pytest.mark.parametrize("cgroups", ["writable", "hidden"])
def test_orphans_are_capped_and_none_survives(tmp_path, cgroups):
    submission = hostile(tmp_path / "sub", ORPHANS)
    logs = tmp_path / "logs"
    run = run_grader(cgroups, submission, "--mode", "single", "--check", "echo", "--keep-logs", logs)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    counts = [
        int(line.split()[1]) for p in logs.glob("*.out") for line in p.read_text().splitlines() if "forked" in line
    ]
    assert counts and max(counts) < 1024, counts  # the cap (1024 tasks, the server's own included) held
    assert leftovers(RUN, 10) == []


def test_descriptors_and_disk_are_bounded(tmp_path):
    attack = """
import os
fds = []
try:
    for _ in range(20000):
        fds.append(os.open("/dev/null", os.O_RDONLY))
except OSError:
    pass
print(f"descriptors {len(fds)}", flush=True)
for fd in fds:
    os.close(fd)
written = 0
for folder in (".", "/tmp"):
    try:
        with open(os.path.join(folder, "fill"), "wb") as file:
            for _ in range(200):
                file.write(b"x" * (1 << 20))
                file.flush()
                written += 1 << 20
    except OSError:
        pass
print(f"written {written}", flush=True)
"""
    submission = hostile(tmp_path / "sub", attack)
    logs = tmp_path / "logs"
    run = run_grader("writable", submission, "--mode", "single", "--check", "echo", "--keep-logs", logs)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    log = "\n".join(p.read_text() for p in logs.glob("*.out"))
    descriptors = int(log.split("descriptors ")[1].split()[0])
    written = int(log.split("written ")[1].split()[0])
    assert descriptors < 4096 and written <= 64 << 20, (descriptors, written)
    assert leftovers(RUN) == []


def marked() -> list[int]:
    """Processes that carry this worker's attack marker in their command line."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if MARKER in " ".join(proc.info["cmdline"] or []) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
    return found


def test_nothing_of_the_submission_outlives_a_killed_grader(tmp_path):
    attack = """
import os, time
if os.fork() == 0:
    os.setsid()
    os.execve("/usr/bin/python3", ["python3", "-c", "import time; time.sleep(300)", "attack-marker"], {})
"""
    submission = hostile(tmp_path / "sub", attack, base=SOLUTION)  # a correct server: the load check lasts
    grader = subprocess.Popen(
        grader_command("writable", submission, *SINGLE, "--check", "load"),
        cwd=KIT,
        env={**os.environ, "CONCURRENCY_LAB_TAG_PREFIX": RUN},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not marked() and time.monotonic() < deadline and grader.poll() is None:
            time.sleep(0.05)
        assert marked(), "the attack never ran"
    finally:
        grader.send_signal(signal.SIGKILL)
        grader.wait(10)
    assert leftovers(RUN, 5) == []


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: (d / "handler.py").write_text("x = 1\n" * ((20 << 20) // 6)), "handler.py has 20.0 MiB"),
        (lambda d: (d / "handler.py").unlink() or (d / "handler.py").symlink_to(SOLUTION / "handler.py"), "symbolic"),
        (lambda d: (d / "handler.py").unlink() or os.mkfifo(d / "handler.py"), "not a regular file"),
        (lambda d: (d / "handler.py").write_text("x = (" * 300 + ")" * 300), "does not parse"),
    ],
    ids=["20 MB", "symlink", "fifo", "too deep"],
)
def test_intake_refuses_what_it_should_not_read_quickly(tmp_path, make, reason):
    submission = hostile(tmp_path / "sub", "pass")
    make(submission)
    start = time.monotonic()
    out = tmp_path / "results.json"
    run = run_grader("writable", submission, "--json", out, timeout=60)
    assert run.returncode == 2 and reason in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert json.loads(out.read_text())["output"].startswith("not gradable:")
    assert time.monotonic() - start < 30


def test_a_broken_optional_file_costs_only_the_optional_part(tmp_path):
    submission = mutant(tmp_path / "sub", "threadpool_server.py", "def serve(", "def serve(:", optional=True)
    out = tmp_path / "results.json"
    run = run_grader(
        "writable", submission, "--mode", "single", "--mode", "threadpool", "--check", "echo", "--json", out
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    tests = {t["tags"][1]: t for t in json.loads(out.read_text())["tests"]}
    assert tests["single"]["score"] == 1
    assert tests["threadpool"]["score"] == 0 and "threadpool_server.py does not parse" in tests["threadpool"]["output"]


def test_without_bubblewrap_a_runner_uid_alone_is_flagged_and_can_be_refused(tmp_path):
    """The grader is run from a folder that other users may read, made so on purpose (wherever the kit lies:
    a clone in a private folder is out of the runner uid's reach): the runner uid can read it, so it is flagged."""
    attack = """
import os, time
if os.fork() == 0:
    os.setsid()
    os.execve("/usr/bin/python3", ["python3", "-c", "import time; time.sleep(300)", "attack-marker"], {})
"""
    submission = hostile(tmp_path / "sub", attack)
    no_bwrap = {"CONCURRENCY_LAB_BWRAP": str(tmp_path / "no-bwrap")}
    out = tmp_path / "results.json"
    shared = Path(tempfile.mkdtemp(prefix="concurrency-lab-shared-", dir="/tmp"))  # /tmp: every user may enter
    try:
        shared.chmod(0o755)
        args = ("--mode", "single", "--check", "echo", "--json", out)
        run = run_grader("writable", submission, *args, env=no_bwrap, cwd=shared)
        printed = " ".join(run.stdout.split())
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        assert "servers run as a runner uid of their own, but bubblewrap is not installed" in printed
        assert str(shared) in printed.split("and it can read ")[-1]  # the folder named among what it can read
        assert "not isolated: a submission could alter this result" in json.loads(out.read_text())["output"]
        assert leftovers(RUN) == []  # the daemon left the tree, but not its uid
        refused = run_grader("writable", submission, "--require-isolation", env=no_bwrap, cwd=shared)
        assert refused.returncode == 3 and "isolation is required" in refused.stderr
    finally:
        shutil.rmtree(shared)


FAKE_THREADS = '''
"""A multithread server in name only."""

import threading
import time

from handler import Listener, handle_client, run


def serve(listener: Listener) -> None:
    for _ in range(2):  # threads to show, that serve no one
        threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
    while (client := listener.accept()) is not None:
        conn, addr = client
        conn.settimeout(0.25)  # a client that stays quiet is dropped, so the next one is served at once
        try:
            handle_client(conn, addr)
        except OSError:
            conn.close()


if __name__ == "__main__":
    run(serve, __doc__)
'''


def test_a_multithread_server_that_drops_quiet_clients_loses_the_held_client_check(tmp_path):
    submission = mutant(tmp_path / "sub", "handler.py", "        conn.settimeout(IDLE_TIMEOUT)\n", "")
    (submission / "multithread_server.py").write_text(FAKE_THREADS)
    out = tmp_path / "results.json"
    run = run_grader("writable", submission, "--mode", "multithread", "--check", "concurrency", "--json", out)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    tests = {t["name"]: t for t in json.loads(out.read_text())["tests"]}
    held = tests["Concurrency: Who waits for a silent client: multithread"]
    assert held["score"] == 0 and "a quiet client must still be served, not dropped" in held["output"]


def test_a_process_server_that_ignores_the_start_method_loses_those_points(tmp_path):
    submission = mutant(tmp_path / "sub", "multiprocess_server.py", "context.Process(", "multiprocessing.Process(")
    out = tmp_path / "results.json"
    run = run_grader("writable", submission, "--mode", "multiprocess", "--check", "start_method", "--json", out)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    scores = {t["name"].split("[")[1].split("]")[0]: t for t in json.loads(out.read_text())["tests"]}
    assert scores["fork"]["score"] == 2
    for method in ("spawn", "forkserver"):
        assert scores[method]["score"] == 0 and "was started by fork" in scores[method]["output"]


def test_without_bubblewrap_the_disk_a_server_fills_is_measured_and_costs_the_check(tmp_path):
    attack = """
for name in ("fill-1", "fill-2"):  # each under the 64 MiB a single file may have
    with open(name, "wb") as file:
        for _ in range(50):
            file.write(b"x" * (1 << 20))
"""
    submission = hostile(tmp_path / "sub", attack)
    no_bwrap = {"CONCURRENCY_LAB_BWRAP": str(tmp_path / "no-bwrap")}
    out = tmp_path / "results.json"
    run = run_grader("writable", submission, *SINGLE, "--check", "echo", "--json", out, env=no_bwrap)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    (test,) = json.loads(out.read_text())["tests"]
    assert test["score"] == 0 and "left 100 MiB in its folder: at most 64 MiB may be written" in test["output"]


def test_servers_side_by_side_get_their_own_runner_uids_and_one_teardown_spares_the_other(tmp_path):
    from autograder import sandbox
    from autograder.client import exchange, get
    from autograder.harness import Limits, Server

    os.chmod(tmp_path, 0o711)  # as a grading's folder is: runner uids pass through to their own
    isolation = sandbox.detect([])
    assert isolation.level == "sandbox" and isolation.runner_uids
    first, second = (
        Server(SOLUTION / "single_server.py", ["--port", "0"], tmp_path / name, limits=Limits(), isolation=isolation)
        for name in ("a", "b")
    )
    try:
        first.start(), second.start()
        uids = {first.process().uids().real, second.process().uids().real}
        assert len(uids) == 2 and all(sandbox.UID_BASE <= uid < sandbox.UID_BASE + sandbox.SLOTS for uid in uids)
        assert first.kill() == []
        assert exchange(second.address, get("/still-here"), timeout=2, whole_reply=True).raw.startswith(b"HTTP/1.1 200")
    finally:
        first.kill(), second.kill()


@pytest.mark.skipif(os.geteuid() != 0, reason="runner uids need root")
def test_what_a_runner_uid_leaves_in_the_shared_temporary_folders_is_gone_when_it_is_released(tmp_path):
    """Without bubblewrap a runner uid writes into the machine's /tmp, /var/tmp and /dev/shm: a file, a FIFO, a
    folder, and a link to a file of the machine's. The next submission that claims the same uid must find none
    of them (to read or to change), and the link's target is left alone."""
    from autograder import sandbox
    from autograder.harness import launcher

    marker = f"attack-leftover-{os.getpid()}"
    target = tmp_path / "the-machines-own-file"
    target.write_text("untouched")
    target.chmod(0o644)
    runner = sandbox.claim_runner()
    try:
        plant = (
            "import os, sys\n"
            "m, target = sys.argv[1], sys.argv[2]\n"
            "open(f'/tmp/{m}', 'w').write('left for the next one')\n"
            "os.mkfifo(f'/dev/shm/{m}-fifo')\n"
            "os.makedirs(f'/var/tmp/{m}/inside')\n"
            "os.symlink(target, f'/tmp/{m}-link')\n"
        )
        command = [*launcher(runner.uid), "--", sandbox.SYSTEM_PYTHON, "-I", "-c", plant, marker, str(target)]
        subprocess.run(command, check=True, timeout=30, cwd="/", env={"PATH": "/usr/bin:/bin"})
        planted = [f"/tmp/{marker}", f"/dev/shm/{marker}-fifo", f"/var/tmp/{marker}", f"/tmp/{marker}-link"]
        assert all(os.path.lexists(path) for path in planted)  # the attack is real
        assert all(os.lstat(path).st_uid == runner.uid for path in planted)
    finally:
        assert runner.release() == []
    assert not any(os.path.lexists(path) for path in planted)
    assert target.read_text() == "untouched"


@pytest.mark.skipif(os.geteuid() != 0, reason="control groups need root")
def test_the_control_groups_a_killed_grader_left_are_removed_by_the_next_grading(tmp_path):
    """A grader SIGKILLed before its teardown leaves its servers' (empty) control groups behind: the next
    grading removes the kit's empty groups older than STALE_GROUP, and never one that holds a task."""
    from autograder.harness import CGROUP_ROOT, remove_group, remove_stale_groups

    if not (CGROUP_ROOT / "pids" / "cgroup.procs").exists():
        pytest.skip("no cgroup v1 pids controller here")
    parent = CGROUP_ROOT / "pids" / f"test-stale-groups-{os.getpid()}"  # of its own: other gradings run meanwhile
    parent.mkdir()
    left = parent / "concurrency-lab-leftover"
    busy = parent / "concurrency-lab-busy"
    left.mkdir()
    busy.mkdir()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (busy / "cgroup.procs").write_text(str(sleeper.pid))
        assert remove_stale_groups(parent, older_than=3600) == []  # too young: maybe a grading's, being made
        removed = remove_stale_groups(parent, older_than=0)
        assert left in removed and busy not in removed
        assert not left.exists() and busy.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
        for group in (busy, left, parent):  # the kernel lets go of the sleeper shortly after it is reaped
            remove_group(group, seconds=5.0)
