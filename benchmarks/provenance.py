"""Where a benchmark's figures were measured (the kit's commit; each benchmark names the machine beside it), and
where they go."""

import subprocess
from pathlib import Path

KIT = Path(__file__).resolve().parent.parent


def commit() -> str:
    """The kit's commit, as `git describe` gives it ("unknown" outside a clone)."""
    done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=KIT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def publish(out: Path, lines: list[str]) -> None:
    """Write a benchmark's figures (its markdown lines) to out, and show them."""
    text = "\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
