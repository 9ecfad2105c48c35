"""A student's notebook runs in the kit's kernel provisioner (autograder/notebook.py): isolated, and still a
kernel nbgrader can drive. (test_course.py shows what a hostile notebook cell can no longer reach.)"""

import json
import os
import subprocess
import sys
import textwrap

import psutil

from autograder import notebook

RUN = textwrap.dedent(
    """
    import json, sys, nbformat
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook()
    cells = ["import os; print(os.getuid(), os.getcwd())", "while True: pass", "print('after', open('x.txt').read())"]
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    where = {"metadata": {"path": sys.argv[1]}}  # as nbgrader's Execute: interrupt at the timeout, go on
    NotebookClient(notebook, timeout=3, interrupt_on_timeout=True, allow_errors=True, resources=where).execute()
    print(json.dumps([[o.get("text") or o.get("ename") for o in cell.outputs] for cell in notebook.cells]))
    """
)


def test_a_cell_that_never_ends_is_interrupted_and_the_kernel_goes_on_then_nothing_of_it_is_left(tmp_path):
    (tmp_path / "x.txt").write_text("the notebook's own folder")
    stages = tmp_path / "tmp"  # where the provisioner copies the notebook's folder (TMPDIR): its own, here
    stages.mkdir()
    env = {**os.environ, "JUPYTER_DEFAULT_PROVISIONER_NAME": notebook.NAME, "TMPDIR": str(stages)}
    run = subprocess.run(
        [sys.executable, "-c", RUN, str(tmp_path)], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr[-3000:]
    first, endless, after = json.loads(run.stdout.strip().splitlines()[-1])
    uid, cwd = first[0].split()
    assert cwd == notebook.NOTEBOOK and (int(uid) != 0 or os.geteuid() != 0)  # a runner uid of its own, as root
    assert endless == ["KeyboardInterrupt"]  # interrupted at the cell's timeout, inside the sandbox
    assert after == ["after the notebook's own folder\n"]  # the same kernel, in a copy of the notebook's folder
    assert list(stages.iterdir()) == []  # the copy removed
    left = [p.info for p in psutil.process_iter(["pid", "cmdline"]) if str(stages) in " ".join(p.info["cmdline"] or [])]
    assert left == []  # no bubblewrap of it, so nothing inside its PID namespace either
