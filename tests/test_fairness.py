"""A busy machine changes the time of a grading, never the grade: the reference gets 100 at half a CPU and
beside CPU hogs; a server slow on purpose loses the load check alone, and a load generator that cannot
keep time makes the grading a grader fault, never a deduction."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from autograder import KIT, SOLUTION, machine
from autograder.harness import launcher

from conftest import leftovers, mutant

RUN = f"fair-{os.getpid()}-"  # the tag prefix of these tests' servers
SLOW_FOR_LOCUST = "        if b'python-requests' in request:  # locust's client: every reply 2 s late\n"


@contextlib.contextmanager
def cpu_quota(cpus: float) -> Iterator[machine.CpuQuota]:
    """A control group of `cpus` CPUs for the test's processes, removed afterwards; skip where none can be made."""
    if os.geteuid() != 0:
        pytest.skip("a CPU quota needs root")
    try:
        quota = machine.CpuQuota(cpus, f"concurrency-lab-test-{uuid.uuid4().hex[:12]}")
    except OSError as exc:
        pytest.skip(f"no CPU controller to write here: {exc}")
    try:
        yield quota
    finally:
        quota.remove()


@contextlib.contextmanager
def hogs(count: int, quota: machine.CpuQuota) -> Iterator[None]:
    """count processes that spin on the CPU inside quota, as `stress-ng --cpu` would; killed afterwards."""
    spinning = [
        subprocess.Popen([*launcher(cgroups=[quota.path]), "--", sys.executable, "-c", "while True: pass"])
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for process in spinning:
            process.kill()
            process.wait(10)


def grade(submission: Path, out: Path, *options: str, prefix: tuple[str, ...] = (), **popen) -> subprocess.Popen:
    """A grading of submission, started (its results.json at out); prefix: a command it runs under."""
    command = [*prefix, sys.executable, "-m", "autograder", "grade", str(submission), "--json", str(out), *options]
    env = {**os.environ, "COLUMNS": "200", "CONCURRENCY_LAB_TAG_PREFIX": RUN}
    return subprocess.Popen(command, cwd=KIT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(run: subprocess.Popen, timeout: float = 400) -> str:
    """What the grading printed, once it has ended (killed if it runs past timeout)."""
    try:
        printed, _ = run.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        run.kill()
        printed, _ = run.communicate()
        pytest.fail(f"the grading ran past {timeout} s: {printed[-2000:]}")
    return printed


def finish_watched(run: subprocess.Popen, watch, done: threading.Event) -> str:
    """finish(run), while watch() runs in a thread that ends once done is set, after the grading."""
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        return finish(run)
    finally:
        done.set()
        watcher.join(5)


def lost(results: dict) -> dict[str, str]:
    return {t["name"]: t["output"] for t in results["tests"] if t["score"] < t["max_score"]}


def test_the_reference_scores_100_at_half_a_cpu(tmp_path):
    """Gradescope's default allotment: half a CPU, the grader, its servers and locust all inside it."""
    with cpu_quota(0.5) as quota:
        run = grade(SOLUTION, tmp_path / "results.json", prefix=(*launcher(cgroups=[quota.path]), "--"))
        printed = finish(run)
    assert run.returncode == 0, printed[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["score"] == 100, lost(results)
    assert "fault" not in results["output"]
    assert not leftovers(RUN)


def test_the_reference_scores_100_beside_cpu_hogs(tmp_path):
    """Three CPU hogs beside the grading, all in one CPU: four times as much wants the CPU as it has."""
    with cpu_quota(1.0) as quota, hogs(3, quota):
        run = grade(SOLUTION, tmp_path / "results.json", prefix=(*launcher(cgroups=[quota.path]), "--"))
        printed = finish(run)
    assert run.returncode == 0, printed[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["score"] == 100, lost(results)
    assert not leftovers(RUN)


def test_a_grading_counts_the_cpus_its_quota_and_affinity_allow():
    ask = [sys.executable, "-c", "from autograder import machine; print(machine.cpus(), machine.default_jobs())"]
    with cpu_quota(0.5) as quota:
        half = subprocess.run([*launcher(cgroups=[quota.path]), "--", *ask], capture_output=True, text=True, timeout=60)
    assert half.stdout.split() == ["0.5", "1"], half.stderr  # half a CPU runs one check at a time
    one_core = subprocess.run(["taskset", "-c", "0", *ask], capture_output=True, text=True, timeout=60)
    assert one_core.stdout.split() == ["1.0", "2"], one_core.stderr


def slow_for_locust(folder: Path) -> Path:
    """The reference, but every reply to locust's client comes 2 s late (the grader's own clients: at once)."""
    reply = "        conn.sendall(build_reply(request))\n"
    return mutant(folder, "handler.py", reply, f"{SLOW_FOR_LOCUST}            time.sleep(2)\n{reply}")


def test_a_server_slow_under_load_loses_the_load_check_alone(tmp_path):
    run = grade(slow_for_locust(tmp_path / "slow"), tmp_path / "results.json", "--mode", "multithread")
    printed = finish(run)
    assert run.returncode == 0, printed[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    (name, feedback), *others = lost(results).items()
    assert not others and name.startswith("Load:"), lost(results)
    assert "the median reply took 2" in feedback and "the kit's reference server, loaded at the same time" in feedback
    assert not leftovers(RUN)


def listening(proc: psutil.Process) -> bool:
    """Whether a server process holds a listening socket, in its own network (the check's: /proc/PID/net/tcp,
    not this process's /proc/net/tcp)."""
    try:
        held = {os.readlink(f"/proc/{proc.pid}/fd/{fd}")[8:-1] for fd in os.listdir(f"/proc/{proc.pid}/fd")}
        table = Path(f"/proc/{proc.pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:  # it ended meanwhile
        return False
    return any(fields[3] == "0A" and fields[9] in held for fields in map(str.split, table))


def stop_again_and_again(proc: psutil.Process, stopped: float = 4.0, running: float = 0.05) -> None:
    """Once proc listens, SIGSTOP it for `stopped` seconds, then SIGCONT for `running`, until it ends (its start,
    stopped so, could outlast the grader's wait for it on a busy machine: a fault of another kind)."""
    with contextlib.suppress(psutil.Error):
        while not listening(proc) and proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.01)
        while proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
            proc.send_signal(signal.SIGSTOP)
            time.sleep(stopped)
            proc.send_signal(signal.SIGCONT)
            time.sleep(running)


def watch_new(run: subprocess.Popen, wanted, act, done: threading.Event) -> None:
    """act(proc, n) on each new process of the grading run for which wanted(proc) holds (n: how many came
    before it, from 1), in a thread of its own; until done is set."""
    seen: set[int] = set()
    while not done.is_set():
        with contextlib.suppress(psutil.Error):
            for proc in psutil.Process(run.pid).children(recursive=True):
                if proc.pid not in seen and wanted(proc):
                    seen.add(proc.pid)
                    threading.Thread(target=act, args=(proc, len(seen)), daemon=True).start()
        time.sleep(0.01)


def test_a_machine_on_which_the_reference_is_slow_too_is_a_grader_fault_not_a_deduction(tmp_path):
    """The reference is graded while every server of the grading is stopped again and again (SIGSTOP for
    4 s, then SIGCONT for 50 ms: a user's next request, sent 1 to 2 s after its reply, waits 2 to 3 s for
    the next 50 ms; at 2.5 s, it waited 0.5 to 1.5 s, and the median once came in under the bound): each
    run is slow, and so is the kit's reference, run beside it in the same conditions. No try can be
    judged: a grader fault, never a deduction."""
    options = ("--mode", "multithread", "--check", "load")
    run = grade(SOLUTION, tmp_path / "results.json", *options)
    servers: list[int] = []
    done = threading.Event()

    def stop_each_server(proc: psutil.Process, _: int) -> None:
        servers.append(proc.pid)
        stop_again_and_again(proc)

    printed = finish_watched(
        run, lambda: watch_new(run, lambda p: the_server(p.cmdline()), stop_each_server, done), done
    )
    assert run.returncode == 3, printed[-3000:]  # a grader fault: `course grade` tries it again
    results = json.loads((tmp_path / "results.json").read_text())
    (test,) = results["tests"]
    assert test["score"] == 0 and "The grader had a fault, so this is not a grade" in results["output"]
    assert "too busy to judge the load" in results["output"] and "median reply" not in test["output"]
    assert len(servers) == 7  # the submission's alone, then a new one of it and the reference in each of 3 tries
    assert not leftovers(RUN)


def the_server(command: list[str], mode: str = "multithread") -> bool:
    """Whether a command line is the server's own (`python -u …multithread_server.py …`), not the launcher's
    or bubblewrap's, which carry it as arguments."""
    return command[1:2] == ["-u"] and command[2:3] != [] and command[2].endswith(f"{mode}_server.py")


def one_at_a_time(folder: Path) -> Path:
    """The multithread server, but it waits for each client's thread before it takes the next."""
    start = "        thread.start()\n"
    return mutant(folder, "multithread_server.py", start, f"{start}        thread.join()\n")


@pytest.mark.parametrize("tries_stopped", [1, 3])
def test_a_check_the_grader_could_not_time_is_tried_again(tmp_path, tries_stopped):
    """The grader is stopped for 2 s (SIGSTOP, then SIGCONT; over plugin.FROZEN) in the first try, or in every
    try, of a check whose deduction rests on a wait (a server serving one client at a time: a second client
    gets no reply within 5 s). A deduction stands only from a try in which the grader kept time; with none,
    the grading is a grader fault."""
    options = ("--mode", "multithread", "--check", "held_client", "--jobs", "1")
    run = grade(one_at_a_time(tmp_path / "serial"), tmp_path / "results.json", *options)
    servers: set[int] = set()
    done = threading.Event()

    def stop_the_grader_in_each_try() -> None:  # each try starts a server of its own
        while not done.is_set() and len(servers) < tries_stopped:
            with contextlib.suppress(psutil.Error):
                for proc in psutil.Process(run.pid).children(recursive=True):
                    if proc.pid not in servers and the_server(proc.cmdline()):
                        servers.add(proc.pid)
                        time.sleep(0.3)  # the check is under way: its server is up
                        os.kill(run.pid, signal.SIGSTOP)
                        time.sleep(2.0)
                        os.kill(run.pid, signal.SIGCONT)
            time.sleep(0.02)

    printed = finish_watched(run, stop_the_grader_in_each_try, done)
    results = json.loads((tmp_path / "results.json").read_text())
    (test,) = results["tests"]
    assert test["score"] == 0
    if tries_stopped == 1:  # the second try kept time: its deduction stands
        assert run.returncode == 0, printed[-3000:]
        assert "a second client got no reply at all within 5 s" in test["output"]
    else:
        assert run.returncode == 3, printed[-3000:]
        assert "too busy to judge this check in 3 tries" in test["output"]
    assert not leftovers(RUN)


def test_a_server_the_machine_stalls_for_a_moment_costs_no_point(tmp_path):
    """The first server of the check is stopped for 12 s as soon as it runs (SIGSTOP, then SIGCONT), as a
    machine may stall a process: the check's first try deducts (no reply within 10 s), with the grader's
    own timers on time. A deduction counts only once a second try, with a new server, sees it too: it does
    not, and the reference keeps its point."""
    run = grade(SOLUTION, tmp_path / "results.json", "--mode", "single", "--check", "echo")
    stopped: list[int] = []
    done = threading.Event()

    def stall_the_first(proc: psutil.Process, number: int) -> None:
        if number == 1:
            stopped.append(proc.pid)
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGSTOP)
                time.sleep(12)
                proc.send_signal(signal.SIGCONT)

    single_server = lambda proc: the_server(proc.cmdline(), "single")  # noqa: E731
    printed = finish_watched(run, lambda: watch_new(run, single_server, stall_the_first, done), done)
    assert run.returncode == 0, printed[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["score"] == 1 and len(stopped) == 1, lost(results)
    assert not leftovers(RUN)
