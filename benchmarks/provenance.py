"""Where a benchmark's figures were measured: the kit's commit (each benchmark names the machine beside it)."""

import subprocess
from pathlib import Path

KIT = Path(__file__).resolve().parent.parent


def commit() -> str:
    """The kit's commit, as `git describe` gives it ("unknown" outside a clone)."""
    done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=KIT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"
