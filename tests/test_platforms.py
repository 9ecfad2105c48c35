"""The bundles where courses grade: Gradescope's run_autograder in a Docker-like container (no namespaces,
no ptrace, cgroups read-only) at half a CPU, Gradescope's default allotment; PrairieLearn's run.sh in the
same container with no network but its loopback. Each on what students hand in: the release as handed
out, the reference, and a submission that cannot be graded."""

import container
import pytest
from test_bundles import ECHO, extras, gradescope, gradescope_accepts, handed_out, prairielearn, reference_files
from test_bundles import released as released  # the module's own release (a fixture)

__all__ = ["handed_out", "released"]  # fixtures used by name


@pytest.fixture
def half_a_cpu():
    container.require()
    with container.half_cpu() as tasks:
        yield tasks


def inside(half_a_cpu, network: bool = True):
    """What runs the platform's script: inside the container, at half a CPU (subprocess.run's form)."""

    def run(command, env, capture_output, text, timeout):
        return container.run([str(part) for part in command], timeout, cpu_tasks=half_a_cpu, network=network, env=env)

    return run


@pytest.mark.parametrize("kind", ["as handed out", "the reference", "not gradable"])
def test_run_autograder_in_a_docker_like_container_at_half_a_cpu(tmp_path, released, handed_out, half_a_cpu, kind):
    files = {**handed_out, **extras(handed_out, tmp_path)}
    if kind == "the reference":
        files |= reference_files("concurrency-lab/assignment/")
    if kind == "not gradable":
        del files["concurrency-lab/assignment/handler.py"]
    found = gradescope(tmp_path / "root", released, files, runner=inside(half_a_cpu))  # every check
    assert gradescope_accepts(found), found
    assert found["visibility"] == "visible" and "fault" not in found["output"], found["output"]
    if kind == "the reference":
        assert found["score"] == 100, [t["output"] for t in found["tests"] if t["score"] < t["max_score"]]
        assert "Optional part, apart from that score: 46 / 46 points" in found["output"]
    elif kind == "as handed out":
        assert found["score"] == 0 and len(found["tests"]) == 69  # the optional skeletons: not handed in
    else:
        assert found["score"] == 0 and found["output"].startswith("not gradable: missing handler.py")


def test_prairielearns_run_sh_in_the_container_without_network(tmp_path, released, half_a_cpu):
    found = prairielearn(tmp_path, released, reference_files(), *ECHO, runner=inside(half_a_cpu, network=False))
    assert found["gradable"] is True and found["score"] == 1.0, found["message"]
