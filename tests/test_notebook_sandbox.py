"""A student's notebook runs in the kit's kernel provisioner (autograder/notebook.py): isolated, and still a
kernel nbgrader can drive; where bubblewrap cannot work, as the course's setting says. (test_course.py shows
what a hostile notebook cell can no longer reach.)"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from autograder import notebook, sandbox

RUN = textwrap.dedent(
    """
    import json, sys, nbformat
    from nbclient import NotebookClient
    from traitlets.config import Config

    notebook = nbformat.v4.new_notebook()
    cells = ["import os; print(os.getuid(), os.getcwd())", "while True: pass", "print('after', open('x.txt').read())"]
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    where = {"metadata": {"path": sys.argv[1]}}  # as nbgrader's Execute: interrupt at the timeout, go on
    course = Config({"ConcurrencyLab": {"isolation": sys.argv[2]}})  # as a course's nbgrader_config.py sets it
    options = dict(timeout=3, interrupt_on_timeout=True, allow_errors=True, resources=where, config=course)
    NotebookClient(notebook, **options).execute()
    print(json.dumps([[o.get("text") or o.get("ename") for o in cell.outputs] for cell in notebook.cells]))
    """
)


def run_notebook(folder: Path, choice: str = "sandbox", env: dict | None = None) -> subprocess.CompletedProcess:
    """RUN in a process of its own, its kernel started by the kit's provisioner, in a course set to choice."""
    env = {**os.environ, "JUPYTER_DEFAULT_PROVISIONER_NAME": notebook.NAME, **(env or {})}
    command = [sys.executable, "-c", RUN, str(folder), choice]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, cwd=folder)


def test_a_cell_that_never_ends_is_interrupted_and_the_kernel_goes_on_then_nothing_of_it_is_left(tmp_path):
    (tmp_path / "x.txt").write_text("the notebook's own folder")
    stages = tmp_path / "tmp"  # where the provisioner copies the notebook's folder (TMPDIR): its own, here
    stages.mkdir()
    run = run_notebook(tmp_path, env={"TMPDIR": str(stages)})
    assert run.returncode == 0, run.stderr[-3000:]
    first, endless, after = json.loads(run.stdout.strip().splitlines()[-1])
    uid, cwd = first[0].split()
    assert cwd == notebook.NOTEBOOK and (int(uid) != 0 or os.geteuid() != 0)  # a runner uid of its own, as root
    assert endless == ["KeyboardInterrupt"]  # interrupted at the cell's timeout, inside the sandbox
    assert after == ["after the notebook's own folder\n"]  # the same kernel, in a copy of the notebook's folder
    assert list(stages.iterdir()) == []  # the copy removed
    left = [p.info for p in psutil.process_iter(["pid", "cmdline"]) if str(stages) in " ".join(p.info["cmdline"] or [])]
    assert left == []  # no bubblewrap of it, so nothing inside its PID namespace either


def runner_can_run_this_python() -> bool:
    """Whether a runner uid may run this kernel's packages: root, and every folder of them open to all users
    (not so in a virtual environment inside a private folder)."""
    packages = [p for p in sys.path if p.endswith("-packages") and os.path.isdir(p)]
    return os.geteuid() == 0 and all(sandbox.others_can_run(p) for p in packages)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="runner uids and bubblewrap are Linux's")
def test_without_bubblewrap_the_kernel_is_refused_by_default_and_runs_as_a_runner_uid_where_the_course_says(tmp_path):
    (tmp_path / "x.txt").write_text("the notebook's own folder")
    no_bwrap = {"CONCURRENCY_LAB_BWRAP": str(tmp_path / "no-bwrap")}  # bubblewrap cannot work here
    refused = run_notebook(tmp_path, "sandbox", no_bwrap)
    assert refused.returncode != 0 and "SandboxError: a student's notebook runs only isolated" in refused.stderr
    assert "This course's c.ConcurrencyLab.isolation (nbgrader_config.py) is 'sandbox'" in refused.stderr
    run = run_notebook(tmp_path, "uid", no_bwrap)
    if not runner_can_run_this_python():  # this machine's setup: the refusal says why
        assert run.returncode != 0 and "SandboxError: " in run.stderr, run.stderr[-3000:]
        said = ("needs the grader to be root", "cannot start as a runner uid", "no Python that a runner uid may")
        assert any(reason in run.stderr for reason in said), run.stderr[-3000:]
        return
    assert run.returncode == 0, run.stderr[-3000:]
    first, endless, after = json.loads(run.stdout.strip().splitlines()[-1])
    uid, cwd = first[0].split()
    assert sandbox.UID_BASE <= int(uid) < sandbox.UID_BASE + sandbox.SLOTS  # a runner uid of its own
    assert Path(cwd).parent.parent == sandbox.runners_dir() and Path(cwd).name == "notebook"  # in a copy it owns
    assert endless == ["KeyboardInterrupt"] and after == ["after the notebook's own folder\n"]
    stage = str(Path(cwd).parent)
    assert not os.path.exists(stage)  # the copy removed
    left = [p.info for p in psutil.process_iter(["pid", "cmdline"]) if stage in " ".join(p.info["cmdline"] or [])]
    assert left == []
