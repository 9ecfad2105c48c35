"""The command line: `python -m autograder [grade|release] ...`."""

import argparse
import sys
from pathlib import Path

from autograder import ASSIGNMENT, SOLUTION


def cmd_release(args: argparse.Namespace) -> int:
    from autograder import release

    try:
        skeletons = release.generate(args.solution)
    except release.ReleaseError as exc:
        print(f"release failed: {exc}", file=sys.stderr)
        return 1
    changed = release.differences(skeletons, args.out)
    if args.check:
        if changed:
            print(
                f"{args.out} is out of date ({', '.join(changed)}): run `python -m autograder release`", file=sys.stderr
            )
            return 1
        print(f"{args.out} matches {args.solution}")
        return 0
    release.write(skeletons, args.out)
    print(
        f"wrote {len(skeletons)} skeletons to {args.out}"
        + (f" ({', '.join(changed)} changed)" if changed else " (no change)")
    )
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)

    release = commands.add_parser("release", help="generate the student skeletons in assignment/ from solution/")
    release.add_argument("--solution", type=Path, default=SOLUTION, help="the reference (default: %(default)s)")
    release.add_argument("--out", type=Path, default=ASSIGNMENT, help="where the skeletons go (default: %(default)s)")
    release.add_argument(
        "--check", action="store_true", help="write nothing; fail if --out differs from a fresh generation"
    )
    release.set_defaults(run=cmd_release)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.run(args)
