"""Fixtures of the checks: the grading run, and servers of the submission started under limits."""

from collections.abc import Callable, Iterator

import pytest

from autograder.harness import Server, ServerError
from autograder.plugin import Grader
from autograder.rubric import Deduction, expect

Serve = Callable[..., Server]


@pytest.fixture(scope="session")
def grading(pytestconfig: pytest.Config) -> Grader:
    return next(plugin for plugin in pytestconfig.pluginmanager.get_plugins() if isinstance(plugin, Grader))


@pytest.fixture
def serve(grading: Grader, request: pytest.FixtureRequest) -> Iterator[Serve]:
    """serve(mode, *args): a server of the submission, listening on 127.0.0.1, port 0; killed afterwards."""
    servers: list[Server] = request.node.lab_servers

    def start(mode: str, *args: str) -> Server:
        key = (mode, args)
        if key in grading.start_failures:
            raise Deduction(grading.start_failures[key])
        script = grading.submission / f"{mode}_server.py"
        server = Server(
            script, ["--port", "0", *args], grading.log_dir, limits=grading.limits, isolation=grading.isolation
        )
        servers.append(server)
        try:
            return server.start(ready_timeout=10.0)
        except ServerError as exc:
            feedback = f"{mode}_server.py {' '.join(args)} did not start: it {exc}".replace("  ", " ")
            grading.start_failures[key] = feedback
            raise Deduction(feedback) from None

    yield start
    left = {server.script.name: server.kill() for server in servers}
    if any(left.values()):
        raise RuntimeError(f"processes that survived SIGKILL: {left}")
    for server in servers:  # a sandbox's tmpfs caps the disk; a runner uid's own folder is measured here
        expect(
            server.disk_used <= grading.limits.disk,
            f"{server.script.name} left {server.disk_used >> 20} MiB in its folder: "
            f"at most {grading.limits.disk >> 20} MiB may be written",
        )
