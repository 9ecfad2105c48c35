"""A student's notebook is student code: where it runs when nbgrader autogrades it.

nbgrader runs each notebook in a Jupyter kernel as the instructor, in the course folder: left to
itself, a cell could read source/ (the solutions and the hidden tests) and gradebook.db, write into
the course, and read the instructor's environment. The course folder that `course init` writes has
nbgrader's kernels started through the SandboxedProvisioner below (a jupyter_client kernel
provisioner, registered under NAME in pyproject.toml and chosen in nbgrader_config.py), so that
each kernel runs

- inside bubblewrap, as the servers do (sandbox.py), set up by the grader (who can read this Python
  and its packages wherever they lie): the system's programs and this Python with its packages
  read-only, a copy of the notebook's folder (the submission, its results/) at /notebook,
  its only writable place beside a size-capped /tmp, and a cleared environment;
- as a runner uid of its own where the grader is root, under the servers' limits (CPU time longer:
  a notebook runs every cell in one kernel).

Nothing else of the machine is in its view: not the course, not the other students' work, not the
kit. Where bubblewrap does not work (a JupyterHub pod, a container without user namespaces), the
course's own setting decides (c.ConcurrencyLab.isolation in its nbgrader_config.py, CHOICES):
"sandbox", the default, starts no kernel, and nbgrader reports that notebook's autograde as failed,
with the reason; "uid" runs the kernel as a runner uid of its own without bubblewrap (a copy of the
notebook's folder that it owns, a cleared environment, the same limits; it sees the machine as any
user does); "none" runs it as nbgrader would, as the instructor.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil
from jupyter_client.provisioning import LocalProvisioner
from traitlets import Enum
from traitlets.config import Configurable

from autograder import KIT, sandbox
from autograder.harness import LAUNCH, Limits, launcher, rlimits

NAME = "concurrency-lab-sandbox"  # the provisioner's entry point name (pyproject.toml)
NOTEBOOK = "/notebook"  # the copy of the notebook's folder, inside the sandbox
CONNECTION = "/run/kernel"  # the folder of the kernel's connection file, inside the sandbox
LIMITS = Limits(cpu_seconds=600)  # nbgrader's Execute.timeout bounds each cell; this, the whole kernel
SETTING = "c.ConcurrencyLab.isolation"  # where a course chooses, in its nbgrader_config.py
CHOICES = {  # how students' code (each notebook's kernel, the servers) may run, and the risk, in one line each
    "sandbox": "bubblewrap, or a runner uid that can read nothing private; else grading is refused (the default)",
    "uid": "also a runner uid of its own without bubblewrap, where the grader is root: it reads what all users may",
    "none": "as you, not isolated: a student's code can read the solutions and alter grades; every result says so",
}


class SandboxError(RuntimeError):
    """A kernel for a student's notebook cannot be started here as the course asks (the message says why)."""


class ConcurrencyLab(Configurable):
    """The kit's settings of a course, in its nbgrader_config.py (c.ConcurrencyLab.NAME = VALUE)."""

    isolation = Enum(list(CHOICES), default_value="sandbox", help="how students' code runs (CHOICES)").tag(config=True)


def refusal(why: str, choice: str) -> str:
    """Why students' code cannot run here as the course's setting asks, and what else the instructor may choose."""
    others = " or ".join(f'"{name}" ({CHOICES[name]})' for name in CHOICES if name not in ("sandbox", choice))
    setting = f"{SETTING} (nbgrader_config.py)"
    return f"{why}. This course's {setting} is {choice!r}; where bubblewrap cannot work, set it to {others}"


def kernel_isolation(choice: str, private: list[Path], python: str = sys.executable) -> sandbox.Isolation:
    """How a notebook's kernel (of the interpreter python) runs here in a course set to choice: the best this
    machine gives, down to what the choice accepts; private: what a runner uid without bubblewrap must not
    read (checked, and said). SandboxError, saying why and naming the setting, where it cannot run."""
    if choice == "none":
        return sandbox.Isolation("none", python, False, f"{SETTING} is 'none'")
    why = sandbox.bwrap_works(_real(python), None)  # set up by the grader, as launch_kernel does
    if not why:
        return sandbox.Isolation("sandbox", _real(python), True)
    if choice == "sandbox":
        raise SandboxError(refusal(f"a student's notebook runs only isolated, and its kernel cannot: {why}", choice))
    if os.geteuid() != 0:
        raise SandboxError(refusal(f"{why}, and a runner uid needs the grader to be root (not {os.geteuid()})", choice))
    try:
        runner = sandbox.claim_runner()
    except sandbox.IsolationError as exc:
        raise SandboxError(str(exc)) from None
    try:
        interpreter, path = runner_python(python)
        probe = subprocess.run(
            [*launcher(runner.uid), "--", interpreter, "-c", "import ipykernel"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/",
            env=sandbox.environment("/", {"PYTHONPATH": path} if path else {}),
        )
        if probe.returncode != 0:
            last = (probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"])[-1]
            raise SandboxError(
                f"the kernel cannot start as a runner uid ({interpreter}: {last}): that uid must be able to run "
                "the kernel's Python and read its packages (install them outside private folders)"
            )
        readable = sandbox.readable_by(runner.uid, interpreter, private)
    finally:
        runner.release()
    reason = why + (f", and it can read {', '.join(readable)}" if readable else "")
    return sandbox.Isolation("uid", interpreter, not readable, reason)


def runner_python(python: str) -> tuple[str, str]:
    """(interpreter, PYTHONPATH) of a kernel that a runner uid runs without bubblewrap: python itself where
    that uid may execute it; else the system's python3 of the same version, with python's own packages (a
    venv made from a Python under /root: its packages lie elsewhere, the interpreter in a private folder)."""
    real = _real(python)
    if sandbox.others_can_run(real):
        return real, ""
    version = sandbox.python_version(python)
    system = os.path.realpath(sandbox.SYSTEM_PYTHON)
    if not sandbox.others_can_run(system) or sandbox.python_version(system) != version:
        raise SandboxError(
            f"no Python that a runner uid may execute for the kernel: {real} is in a private folder, and "
            f"{sandbox.SYSTEM_PYTHON} is not Python {'.'.join(map(str, version))}"
        )
    listed = "import json, sys; print(json.dumps([p for p in sys.path if p.endswith('-packages')]))"
    run = subprocess.run([python, "-c", listed], capture_output=True, text=True, timeout=30, check=True)
    return system, os.pathsep.join(json.loads(run.stdout))


def _real(python: str) -> str:
    return os.path.realpath(shutil.which(python) or python)


def describe(kernel: sandbox.Isolation) -> str:
    """How a notebook's kernel runs, in words like Isolation.describe()'s for servers."""
    if kernel.level == "sandbox":
        who = "a runner uid of its own, " if os.geteuid() == 0 else ""
        return f"the notebook's kernel runs isolated ({who}bubblewrap)"
    if kernel.level == "uid" and kernel.isolated:
        return "the notebook's kernel runs isolated (a runner uid of its own, no bubblewrap)"
    if kernel.level == "uid":
        return f"the notebook's kernel runs as a runner uid of its own, but {kernel.reason}"
    return f"the notebook's kernel runs as you ({kernel.reason})"


class SandboxedProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner, with the kernel's command run isolated (see the module)."""

    stage: Path | None = None
    runner: sandbox.Runner | None = None

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> dict:
        choice = ConcurrencyLab(parent=self).isolation
        if choice == "none":
            self.log.warning("Concurrency Lab: a student's notebook runs as you, not isolated (%s is 'none')", SETTING)
            return await super().launch_kernel(cmd, **kwargs)
        folder = Path(kwargs.get("cwd") or os.getcwd())
        course = self.config.get("CourseDirectory", {}).get("root")
        private = [KIT, Path.cwd(), *([Path(course)] if course else [])]  # nbgrader runs in the course folder
        kernel = kernel_isolation(choice, private, cmd[0])
        if kernel.level == "uid":
            if not kernel.isolated:
                self.log.warning("Concurrency Lab: %s", describe(kernel))
            return await self._launch_as_runner(cmd, folder, **kwargs)
        connection = self.parent.connection_file
        stage = self._stage(folder, Path(tempfile.mkdtemp(prefix="concurrency-lab-kernel-")))  # 0700: the grader's
        shutil.copyfile(connection, stage / "kernel" / "kernel.json")
        uid = self._own_stage()
        inside = [arg.replace(connection, f"{CONNECTION}/kernel.json") for arg in cmd]
        command = self._isolated(uid)
        probe = subprocess.run(
            [*command, cmd[0], "-I", "-c", "import ipykernel"], capture_output=True, text=True, timeout=60, cwd="/"
        )
        if probe.returncode != 0:
            await self.cleanup()
            last = (probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"])[-1]
            raise SandboxError(f"a student's notebook runs only isolated, and its kernel cannot start so: {last}")
        kwargs.update(cwd="/", env=sandbox.environment("/", {}))
        return await super().launch_kernel([*command, *inside], **kwargs)

    def _stage(self, folder: Path, stage: Path) -> Path:
        """stage (a new folder) with a copy of the notebook's folder in it, and a folder for the connection file."""
        self.stage = stage
        ignore = lambda parent, names: [n for n in names if Path(parent, n) == stage]  # noqa: E731  (a TMPDIR inside)
        shutil.copytree(folder, stage / "notebook", symlinks=True, ignore=ignore)  # a link leads nowhere inside
        (stage / "kernel").mkdir()
        return stage

    def _own_stage(self) -> int | None:
        """Where the grader is root: a runner uid claimed for the kernel, and the stage made its own."""
        if os.geteuid() != 0:
            return None
        self.runner = sandbox.claim_runner()
        uid = self.runner.uid
        assert self.stage is not None
        for path in [self.stage, *self.stage.rglob("*")]:
            os.chown(path, uid, uid, follow_symlinks=False)
        return uid

    async def _launch_as_runner(self, cmd: list[str], folder: Path, **kwargs: Any) -> dict:
        """The kernel as a runner uid of its own without bubblewrap: in a copy of the notebook's folder that it
        owns (in a folder that the runner uids may pass through), with a cleared environment, under LIMITS."""
        connection = self.parent.connection_file
        interpreter, path = runner_python(cmd[0])
        stage = self._stage(folder, Path(tempfile.mkdtemp(prefix="kernel-", dir=sandbox.runners_dir())))
        shutil.copyfile(connection, stage / "kernel" / "kernel.json")
        (stage / "home").mkdir()
        uid = self._own_stage()
        assert uid is not None  # kernel_isolation chose a runner uid: the grader is root
        inside = [arg.replace(connection, str(stage / "kernel" / "kernel.json")) for arg in cmd[1:]]
        home = str(stage / "home")
        env = sandbox.environment(home, {"TMPDIR": home, **({"PYTHONPATH": path} if path else {})})
        kwargs.update(cwd=str(stage / "notebook"), env=env)
        command = [*launcher(uid, (), rlimits(LIMITS, uid)), "--", interpreter, *inside]
        return await super().launch_kernel(command, **kwargs)

    def _isolated(self, uid: int | None) -> list[str]:
        """The command that runs what follows it isolated: bubblewrap sets up the view (as the grader, who
        can read this Python wherever it lies), then launch.py, inside, sets the limits and becomes uid."""
        python = os.path.realpath(sys.executable)
        fonts = ("/etc/fonts",) if os.path.isdir("/etc/fonts") else ()  # matplotlib's fontconfig
        view = sandbox.view(python, LIMITS.disk, readable=(sys.prefix, str(LAUNCH), *fonts), chdir=NOTEBOOK)
        view += ["--bind", str(self.stage / "notebook"), NOTEBOOK]
        view += ["--perms", "0755", "--dir", "/run", "--ro-bind", str(self.stage / "kernel"), CONNECTION]
        for name, value in sandbox.environment("/tmp", {}).items():
            view += ["--setenv", name, value]
        return [sandbox.BWRAP, *view, *launcher(uid, (), rlimits(LIMITS, uid)), "--"]

    async def send_signal(self, signum: int) -> None:
        """An interrupt reaches the kernel itself (bubblewrap passes no signal into the sandbox)."""
        if signum == signal.SIGINT and self.process is not None:
            with contextlib.suppress(psutil.Error):
                for proc in psutil.Process(self.process.pid).children(recursive=True):
                    if proc.cmdline()[1:3] == ["-m", "ipykernel_launcher"]:  # not bubblewrap, whose arguments name it
                        proc.send_signal(signum)
                        return
        await super().send_signal(signum)

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart)
        if restart:
            return
        if self.runner is not None:  # every process of the kernel's uid, then the uid itself
            self.runner.release()
            self.runner = None
        if self.stage is not None:
            shutil.rmtree(self.stage, ignore_errors=True)
            self.stage = None
