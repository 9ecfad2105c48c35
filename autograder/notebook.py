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
- as a runner uid of its own where the grader is root, under the servers' rlimits (CPU time longer:
  a notebook runs every cell in one kernel).

Nothing else of the machine is in its view: not the course, not the other students' work, not the
kit. Where bubblewrap does not work the kernel is not started, and nbgrader reports that notebook's
autograde as failed, with the reason.
"""

import contextlib
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

from autograder import sandbox
from autograder.harness import LAUNCH, Limits, launcher, rlimits

NAME = "concurrency-lab-sandbox"  # the provisioner's entry point name (pyproject.toml)
NOTEBOOK = "/notebook"  # the copy of the notebook's folder, inside the sandbox
CONNECTION = "/run/kernel"  # the folder of the kernel's connection file, inside the sandbox
LIMITS = Limits(cpu_seconds=600)  # nbgrader's Execute.timeout bounds each cell; this, the whole kernel


class SandboxError(RuntimeError):
    """A kernel for a student's notebook cannot be started isolated here (the message says why)."""


class SandboxedProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner, with the kernel's command run isolated (see the module)."""

    stage: Path | None = None
    runner: sandbox.Runner | None = None

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> dict:
        connection = self.parent.connection_file
        folder = Path(kwargs.get("cwd") or os.getcwd())
        stage = self.stage = Path(tempfile.mkdtemp(prefix="concurrency-lab-kernel-"))  # 0700: the grader's alone
        ignore = lambda parent, names: [n for n in names if Path(parent, n) == stage]  # noqa: E731  (a TMPDIR inside)
        shutil.copytree(folder, stage / "notebook", symlinks=True, ignore=ignore)  # a link leads nowhere inside
        (stage / "kernel").mkdir()
        shutil.copyfile(connection, stage / "kernel" / "kernel.json")
        uid = None
        if os.geteuid() == 0:
            self.runner = sandbox.claim_runner()
            uid = self.runner.uid
            for path in [stage, *stage.rglob("*")]:
                os.chown(path, uid, uid, follow_symlinks=False)
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
