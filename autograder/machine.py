"""The CPUs a grading really has, and whether it was starved of them.

A grading may run in a container allotted half a CPU (Gradescope's default), beside other gradings, or
beside programs that take every core. None of that may change a grade: the grader counts the CPUs it may
use (its affinity, and the CPU quota of its control group, cgroup v1 or v2) to decide how many checks run
at once, and its checks read how late their own timers fired (Clock) before they blame a server for
being slow.
"""

import contextlib
import math
import os
import threading
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cpus() -> float:
    """The CPUs this process may use: those of its affinity, capped by its control groups' CPU quota."""
    count = float(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    quota = cpu_quota()
    return min(count, quota) if quota else count


def cpu_quota() -> float | None:
    """The CPU quota (in CPUs) of this process's control group and of its ancestors, the smallest; None
    where none is set or none can be read (cgroup v1 cpu.cfs_quota_us / cpu.cfs_period_us; v2 cpu.max)."""
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":
                found += _quotas(CGROUP_ROOT, path, _v2_quota)
            elif "cpu" in controllers.split(","):
                found += _quotas(CGROUP_ROOT / "cpu", path, _v1_quota)
    return min(found) if found else None


def _quotas(mount: Path, path: str, read) -> list[float]:
    """The quotas set on the group at path under mount and on its ancestors (inside a container, the
    group may be the mount's root)."""
    quotas = []
    folder = mount / path.lstrip("/")
    for group in (folder, *folder.parents):
        if not group.is_relative_to(mount):
            break
        quota = read(group)
        if quota:
            quotas.append(quota)
    return quotas


def _v1_quota(group: Path) -> float | None:
    with contextlib.suppress(OSError, ValueError):
        quota = int((group / "cpu.cfs_quota_us").read_text())
        period = int((group / "cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return quota / period
    return None


def _v2_quota(group: Path) -> float | None:
    with contextlib.suppress(OSError, ValueError):
        quota, period = (group / "cpu.max").read_text().split()
        if quota != "max" and int(period) > 0:
            return int(quota) / int(period)
    return None


def default_jobs(most: int = 4) -> int:
    """Checks (or gradings) to run at once: two per CPU this process may use (a check waits more than it
    computes), at least one, at most `most`. Half a CPU runs one at a time."""
    return max(1, min(most, math.floor(2 * cpus())))


class Clock:
    """How late this process's own timers fire: a thread that sleeps TICK seconds again and again and
    keeps the worst lateness of each second. A grader whose timers fire late (its machine starved it of
    CPU, or it was stopped) cannot tell a slow server from its own slowness in that time."""

    TICK = 0.02

    def __init__(self) -> None:
        self._late: dict[int, float] = {}  # {second (monotonic): the worst lateness in it}
        self._lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True, name="grader clock").start()

    def _run(self) -> None:
        while True:
            before = time.monotonic()
            time.sleep(self.TICK)
            now = time.monotonic()
            late = now - before - self.TICK
            with self._lock:
                second = int(now)
                self._late[second] = max(self._late.get(second, 0.0), late)
                for old in [s for s in self._late if s < second - 3600]:
                    del self._late[old]

    def worst_lateness(self, since: float, until: float | None = None) -> float:
        """The worst lateness of the timers, in seconds, between since and until (monotonic times)."""
        until = time.monotonic() if until is None else until
        with self._lock:
            return max((late for s, late in self._late.items() if since - 1 <= s <= until + 1), default=0.0)


_CLOCK: Clock | None = None
_CLOCK_LOCK = threading.Lock()


def clock() -> Clock:
    """This process's Clock, started the first time it is asked for."""
    global _CLOCK
    with _CLOCK_LOCK:
        if _CLOCK is None:
            _CLOCK = Clock()
        return _CLOCK


class CpuQuota:
    """A control group that holds the processes put into it to `cpus` CPUs together (cgroup v1's cpu
    controller, or v2's cpu.max): how the kit's tests and benchmarks imitate a container allotted half a
    CPU. Root only; OSError where no CPU controller can be written. Put a command in it with
    harness.launcher(cgroups=[quota.path]); remove() once its processes have ended."""

    PERIOD = 100_000  # microseconds

    def __init__(self, cpus: float, name: str) -> None:
        v1 = CGROUP_ROOT / "cpu"
        if (v1 / "cpu.cfs_quota_us").exists():
            self.path = v1 / name
            self.path.mkdir()
            (self.path / "cpu.cfs_period_us").write_text(str(self.PERIOD))
            (self.path / "cpu.cfs_quota_us").write_text(str(int(cpus * self.PERIOD)))
        else:
            self.path = CGROUP_ROOT / name
            self.path.mkdir()
            (self.path / "cpu.max").write_text(f"{int(cpus * self.PERIOD)} {self.PERIOD}")

    def remove(self) -> None:
        from autograder.harness import remove_group  # process control stays in one place

        if not remove_group(self.path, seconds=5.0):
            raise OSError(f"{self.path} still holds processes")
