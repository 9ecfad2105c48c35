"""The command line: `python -m autograder [grade|release] ...` (grade is the default)."""

import argparse
import os
import sys
import time
from pathlib import Path

from autograder import ALL_MODES, ASSIGNMENT, MODES, SOLUTION

COMMANDS = ("grade", "release", "rubric", "compare", "course")


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return int(text)


def cmd_course(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from autograder import course, grade

    try:
        if args.action == "init":
            if course.init(args.course, args.assignment):
                print(f"wrote {args.course}/nbgrader_config.py and {args.course}/source/{args.assignment}/")
                print(f"next: cd {args.course} && nbgrader generate_assignment {args.assignment}")
            else:
                print(f"updated {args.course}/nbgrader_config.py in place (its isolation setting kept; source/ as is)")
            return 0
        if args.action == "record":
            batch = course.record_graded(args.course, args.assignment, lambda r: print(r.line(), flush=True))
            print(f"recorded {len(batch.graded)} in {args.course}/server_scores_{args.assignment}.csv and gradebook.db")
            return 0
        if args.action == "status":
            for student, state, detail in course.status(args.course, args.assignment):
                print(f"{student:20} {state:15} {detail}".rstrip())
            return 0
        console = Console()
        options = [f"--mode={m}" for m in args.mode or ()] + [f"--check={c}" for c in args.check or ()]
        students, done = course.plan(args.course, args.assignment, args.student, options, args.force, args.shard)
        if done:
            print(f"up to date, not graded again: {', '.join(done)} (--force grades them again)")
        if not students:
            return 0
        progress = Progress(TextColumn("grading"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("{task.description}"), console=console,
                            disable=not console.is_terminal)  # fmt: skip  # a log gets the students' lines alone
        with progress:
            task = progress.add_task("", total=len(students))

            def done_one(result) -> None:
                progress.update(task, advance=1, description=result.student)
                progress.console.print(result.line(), markup=False, highlight=False, soft_wrap=True)

            with grade.sigterm_interrupts():  # SIGTERM stops the batch as Ctrl-C does
                whole = args.shard == (1, 1)  # a shard grades the servers alone; `course record` records them
                batch = course.grade(args.course, args.assignment, students, options, done_one, args.jobs, whole)
    except course.CourseError as exc:
        print(f"course: {exc}", file=sys.stderr)
        return 1
    except course.Interrupted as exc:
        print(
            f"course grade: interrupted: {len(exc.graded)} recorded, {len(exc.left)} left "
            f"({', '.join(exc.left)}): the same command grades what is left",
            file=sys.stderr,
        )
        return 130
    unscored = sum(r.score is None for r in batch.graded)
    if args.shard != (1, 1):
        where = f"{args.course}/{course.RESULTS}/"
        print(f"shard {args.shard[0]}/{args.shard[1]}: {len(batch.graded)} graded into {where}; "
              f"`course record {args.course} {args.assignment}` records every shard")  # fmt: skip
        return 0
    print(f"scores in {args.course}/server_scores_{args.assignment}.csv and gradebook.db; {unscored} without a score")
    if batch.stale_feedback:
        print(
            f"feedback older than the new scores: {', '.join(batch.stale_feedback)}; run "
            f"`nbgrader generate_feedback {args.assignment} --force` in {args.course}"
        )
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from rich.console import Console

    from autograder import compare

    lesson = args.preset == "lesson"
    preset = compare.PRESETS["quick" if lesson else args.preset]
    try:
        run_time = compare.parse_duration(args.run_time) if args.run_time else preset["run_time"]
        step_time = compare.parse_duration(args.step_time) if args.step_time else None
        budget = compare.parse_duration(args.budget) if args.budget else None
    except ValueError as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 2
    timeline_work = compare.TIMELINE_WORK_MS if args.timeline and args.work_ms is None else args.work_ms
    settings = compare.Settings(
        users=args.users or (compare.TIMELINE_CLIENTS if args.timeline else preset["users"]),
        spawn_rate=args.spawn_rate or preset["spawn_rate"],
        run_time=run_time,
        min_wait=preset["min_wait"] if args.min_wait is None else args.min_wait,
        max_wait=preset["max_wait"] if args.max_wait is None else args.max_wait,
        processes=args.processes,
        request_timeout=args.request_timeout,
        work_ms=timeline_work or 0.0,
        work_kind=args.work_kind or "io",
        start_method=args.start_method or compare.default_start_method(),
    )
    problems = [
        f"{name} must be positive"
        for name, value in (
            ("--users", settings.users),
            ("--spawn-rate", settings.spawn_rate),
            ("--processes", settings.processes),
        )
        if value <= 0
    ]
    if not 0 <= settings.min_wait <= settings.max_wait:
        problems.append("need 0 <= --min-wait <= --max-wait")
    if settings.work_ms < 0 or settings.request_timeout <= 0:
        problems.append("--work-ms must not be negative, --request-timeout must be positive")
    if args.steps and any(n <= 0 for n in args.steps):
        problems.append("--steps must be positive numbers of users")
    if lesson and (args.work_ms is not None or args.work_kind):
        problems.append("the lesson preset sets the work itself (none, 20 ms io, 20 ms cpu): leave out --work-ms")
    if (args.steps or step_time) and not (args.sweep or lesson):
        problems.append("--steps and --step-time need --sweep (or --preset lesson)")
    if budget and not lesson:
        problems.append("--budget is the lesson's (--preset lesson)")
    if args.timeline and (args.sweep or lesson):
        problems.append("--timeline is a run of its own: leave out --sweep and --preset lesson (the lesson draws one)")
    if problems:
        print(f"compare: {'; '.join(problems)}", file=sys.stderr)
        return 2
    modes = list(ALL_MODES) if "all" in args.modes else args.modes
    console = Console()
    before = compare.look()  # as pyperf does: say so when the machine is not quiet, before measuring
    if not before.quiet:
        print(f"compare: {before.describe()}: the rows it disturbs will say machine busy", file=sys.stderr)
        if args.require_quiet:
            print(
                f"compare: --require-quiet: not measuring, as other processes use more than "
                f"{compare.MACHINE_BUSY:.0%} of the CPUs; wait for them to end (`top` shows them), or leave out "
                "--require-quiet to measure anyway",
                file=sys.stderr,
            )
            return 1
    try:
        if args.timeline:
            kinds = [args.work_kind] if args.work_kind else ["io", "cpu"]
            out = args.out or Path("results") / "timeline"
            print_written(compare.timeline(args.submission, modes, settings, kinds, out, console))
            return 0
        if args.sweep or lesson:
            return sweep(args, settings, modes, step_time, lesson, console, before, budget)
        paths = compare.run(
            args.submission,
            modes,
            settings,
            args.out or Path("results"),
            raise_limit=args.preset == "report",
            console=console,
            repeat=args.repeat or 1,
            before=before,
        )
    except compare.CompareError as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 1
    print_written(paths)
    return 0


def print_written(paths: dict[str, Path]) -> None:
    """The table (or summary) a run wrote, then where each of its files is."""
    print(paths["md"].read_text())
    for path in paths.values():
        print(f"wrote {path}")


def sweep(args: argparse.Namespace, settings, modes: list[str], step_time: float | None, lesson: bool, console,
          before=None, budget: float | None = None) -> int:  # fmt: skip
    """compare --sweep, and --preset lesson: a sweep per workload, in folders of their own (the lesson's
    repeats within its time budget, and a timeline of each server at work)."""
    from dataclasses import replace

    from autograder import compare, sweep

    users = sorted(set(args.steps or sweep.STEPS))
    out = args.out or Path("results") / ("lesson" if lesson else "sweep")
    workloads = sweep.WORKLOADS if lesson else {"": (settings.work_ms, settings.work_kind)}
    if lesson:
        rounds = len(workloads) * len(modes) * len(users)
        repeat, step_time = sweep.lesson_plan(rounds, args.repeat, step_time, budget or sweep.LESSON_BUDGET)
        seconds = rounds * repeat * (step_time + sweep.RUN_OVERHEAD)
        about = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
        print(f"lesson: {repeat} run(s) of {step_time:g} s a step, {rounds * repeat} runs: about {about}")
    else:
        repeat, step_time = args.repeat or sweep.REPEAT, step_time or sweep.STEP_TIME
    sweeps = {}
    meter = compare.Meter(console, len(workloads) * len(modes) * len(users) * repeat, step_time)
    with meter:
        for name, (ms, kind) in workloads.items():
            done = sweep.run(
                args.submission,
                modes,
                replace(settings, work_ms=ms, work_kind=kind),
                users,
                step_time,
                repeat,
                meter,
                label=f"{name}: " if name else "",
                before=before,
            )
            sweeps[name] = done
            paths = sweep.write(done, out / name if name else out)
            if not lesson:
                print_written(paths)
    if lesson:
        burst = replace(settings, users=compare.TIMELINE_CLIENTS, work_ms=compare.TIMELINE_WORK_MS)
        timeline = compare.timeline(args.submission, modes, burst, ["io", "cpu"], out, console)
        paths = sweep.lesson(sweeps, out, timeline)
        print(paths["md"].read_text())
        print(f"wrote {', '.join(str(out / name) for name in sweeps)} (a sweep each), {paths['md']}, {paths['png']}, "
              f"{timeline['png']}, {timeline['csv']}")  # fmt: skip
    return 0


def cmd_rubric(args: argparse.Namespace) -> int:
    from autograder import grade

    print(grade.rubric(), end="")
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from rich.console import Console

    from autograder import grade, machine, results, sandbox

    console = Console()
    for path in (args.json, args.prairielearn):  # no earlier result may pass for this one
        if path:
            path.unlink(missing_ok=True)
    try:
        outcome = grade.run_checks(
            args.submission,
            json_path=args.json,
            modes=tuple(args.mode or ALL_MODES),
            only=tuple(args.check or ()),
            public=args.public,
            verbose=args.verbose,
            keep_logs=args.keep_logs,
            isolation=args.isolation,
            require_isolation=args.require_isolation,
            jobs=args.jobs or machine.default_jobs(),
            time_limit=args.time_limit,
        )
    except grade.NotGradable as exc:
        print(f"not gradable: {exc}", file=sys.stderr)
        if args.json:
            results.write_not_gradable(args.json, str(exc))
        if args.prairielearn:
            results.write_prairielearn_not_gradable(args.prairielearn, str(exc))
        return grade.NOT_GRADABLE
    except sandbox.IsolationError as exc:
        print(f"grader fault: isolation is required and cannot be had here: {exc}", file=sys.stderr)
        return grade.GRADER_FAULT
    grader = outcome.grader
    if args.prairielearn:
        interrupted = "Ctrl-C or SIGTERM" if outcome.exit_code == grade.INTERRUPTED else ""
        results.write_prairielearn(args.prairielearn, grader, time.monotonic() - grader.started, interrupted)
    for shown in results.tables(grader):
        console.print(shown)
    if grader.hidden_not_run:
        console.print(
            f"Hidden checks: {grader.hidden_not_run:g} of the 100 points, run by the official grading only "
            "(variants of the checks above); a correct server passes them.",
            highlight=False,
        )
    for line in grader.advice:
        console.print(f"[yellow]Note:[/] {line}", highlight=False)
    lost = results.feedback(grader.results, grader.patterns)
    if lost:
        console.print("\n[bold]What lost points, and what to look at:[/]")
        for line in lost:
            console.print(f"- {line}", markup=False, highlight=False)
    load = {mode: grader.notes[f"load ({mode})"] for mode in ALL_MODES if f"load ({mode})" in grader.notes}
    if load:  # one line, not one a mode
        said = ", ".join(f"{mode} {note.split(',')[0].removesuffix(' requests/s')}" for mode, note in load.items())
        console.print(f"[dim]under load, in requests/s (information, not graded): {said}[/]", highlight=False)
    for name, note in grader.notes.items():
        if not name.startswith("load ("):
            console.print(f"[dim]{name}: {note} (information, not graded)[/]")
    isolation = grader.isolation
    if isolation.isolated:
        console.print(f"[dim]{isolation.describe()}[/]", highlight=False)
    elif os.geteuid() == 0:  # a grader's machine: say it plainly
        console.print(f"[yellow]Warning: {isolation.warning}[/]", highlight=False)
    else:  # most likely a student's own self-check
        console.print(f"[dim]{isolation.describe()}: fine for checking your own work[/]", highlight=False)
    if outcome.exit_code == grade.GRADER_FAULT:
        console.print("[magenta]The grader had a fault, so this is not a grade:[/]")
        for problem in grader.problems:
            console.print(f"  {problem}", markup=False)
    elif outcome.exit_code == grade.INTERRUPTED:
        console.print("[yellow]Grading was interrupted: the checks that did not run are missing.[/]")
    if args.json:
        console.print(f"results written to {args.json}")
    return outcome.exit_code


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
    if args.student_bundle or args.gradescope or args.prairielearn:
        from autograder import bundles

        try:
            if args.student_bundle:
                files = bundles.student_bundle(args.student_bundle, args.out)
                print(f"wrote {args.student_bundle} ({len(files)} files; `python -m autograder` in it self-checks)")
            if args.gradescope:
                files = bundles.gradescope_bundle(args.gradescope, args.out)
                print(f"wrote {args.gradescope} ({len(files)} files; setup.sh and run_autograder at its root)")
            if args.prairielearn:
                image = args.prairielearn_image or bundles.PRAIRIELEARN_IMAGE
                files = bundles.prairielearn_release(args.prairielearn, image, args.out)
                print(f"wrote {args.prairielearn} ({len(files)} files; its README.md says what goes where)")
                if not args.prairielearn_image:
                    print(f"  its info.json names the image {image}, a placeholder: set --prairielearn-image")
        except release.ReleaseError as exc:
            print(f"release failed: {exc}", file=sys.stderr)
            return 1
    return 0


def shard(text: str) -> tuple[int, int]:
    """An argparse type: K/N, 1 <= K <= N."""
    number, _, count = text.partition("/")
    if not (number.isdigit() and count.isdigit() and 1 <= int(number) <= int(count)):
        raise argparse.ArgumentTypeError(f"must be K/N with 1 <= K <= N, as 2/3, not {text!r}")
    return int(number), int(count)


def at_least_one(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)

    release = commands.add_parser("release", help="generate the student skeletons in assignment/ from solution/")
    release.add_argument("--solution", type=Path, default=SOLUTION, help="the reference (default: %(default)s)")
    release.add_argument(
        "--out",
        type=Path,
        default=ASSIGNMENT,
        help="where the skeletons go, and the bundles take them (default: %(default)s)",
    )
    release.add_argument(
        "--check", action="store_true", help="write nothing; fail if --out differs from a fresh generation"
    )
    release.add_argument("--student-bundle", type=Path, metavar="OUT.zip", help="also write the students' zip")
    release.add_argument("--gradescope", type=Path, metavar="OUT.zip", help="also write Gradescope's autograder zip")
    release.add_argument(
        "--prairielearn", type=Path, metavar="DIR", help="also write a PrairieLearn question and its grading image"
    )
    release.add_argument(
        "--prairielearn-image", metavar="NAME", help="the grading image on Docker Hub that its info.json names"
    )
    release.set_defaults(run=cmd_release)

    grade = commands.add_parser("grade", help="grade a submission (the default command)")
    grade.add_argument(
        "submission",
        nargs="?",
        type=Path,
        default=ASSIGNMENT,
        help="a folder with the four files (default: %(default)s)",
    )
    grade.add_argument("--json", type=Path, metavar="PATH", help="write Gradescope's results.json here")
    grade.add_argument("--prairielearn", type=Path, metavar="PATH", help="write PrairieLearn's results.json here")
    grade.add_argument("--mode", action="append", choices=ALL_MODES, help="grade only this mode (repeatable)")
    grade.add_argument("--check", action="append", metavar="NAME", help="only checks whose name or category has NAME")
    grade.add_argument("--public", action="store_true", help="leave out the hidden checks (a student's self-check)")
    grade.add_argument("--keep-logs", type=Path, metavar="DIR", help="copy the servers' output to DIR")
    grade.add_argument(
        "--require-isolation",
        action="store_true",
        help="refuse to grade unless the servers run isolated (a runner uid of their own, bubblewrap)",
    )
    grade.add_argument(
        "--isolation",
        choices=("auto", "none"),
        default="auto",
        help="auto: the best this machine gives (default); none: run servers as the grader (benchmarks only)",
    )
    grade.add_argument(
        "--jobs",
        type=positive,
        help="checks run side by side, in pytest-xdist workers (default: two per CPU this grading may use, counting "
        "its affinity and CPU quota, at most 4 and one per three checks; 1: one after another)",
    )
    grade.add_argument(
        "--time-limit",
        type=positive,
        default=120,
        metavar="SECONDS",
        help="of grading per worker and mode, the time servers take to start not counted (default: %(default)s)",
    )
    grade.add_argument("-v", "--verbose", action="store_true", help="show pytest's own output")
    grade.set_defaults(run=cmd_grade)

    comp = commands.add_parser(
        "compare",
        help="run the same locust load against each mode and write a table, a CSV and a chart",
        description="Presets: quick (the default: 100 users for 20 s, short waits, about a minute "
        "for three modes), report (the report's 10000 users at 1000/s, waits of 1-5 s), and lesson "
        "(a capacity sweep of each of three workloads: none, 20 ms io, 20 ms cpu, repeated within a time "
        "budget, and a timeline). Options given override the preset. --sweep steps the users up (no wait) "
        "to find each mode's capacity. --timeline draws each server at work under one burst of clients.",
    )
    comp.add_argument(
        "submission", nargs="?", type=Path, default=ASSIGNMENT, help="your servers, as grade (default: %(default)s)"
    )
    comp.add_argument("--preset", choices=("quick", "report", "lesson"), default="quick")
    comp.add_argument("--sweep", action="store_true", help="step the load up to find each mode's capacity")
    comp.add_argument("--steps", type=int, nargs="+", metavar="USERS", help="users per step of a sweep (1 2 4 8 16 32)")
    comp.add_argument("--step-time", help="seconds per run of a sweep's step, e.g. 5s (default: 3s)")
    comp.add_argument(
        "--repeat",
        type=positive,
        metavar="N",
        help="runs of each row, or of each step of a sweep: the figures are their medians, with the spread "
        "(default: 1 for a row, 3 for a sweep; the lesson fits 3 in its budget)",
    )
    comp.add_argument(
        "--budget", help="the lesson's time for its runs, e.g. 8m (default: 8m): steps are shortened to fit"
    )
    comp.add_argument(
        "--require-quiet",
        action="store_true",
        help="refuse to measure when other processes use more than a quarter of the CPUs (in a look of a second "
        "before the run)",
    )
    comp.add_argument(
        "--timeline",
        action="store_true",
        help="a picture of each server at work: --users clients at once (default 12), each with --work-ms of work "
        "(default 50), io then cpu (or --work-kind): timeline.png, timeline.csv and timeline.json",
    )
    comp.add_argument("--users", type=int, help="simulated users")
    comp.add_argument("--spawn-rate", type=float, help="users started per second (locust's old --hatch-rate)")
    comp.add_argument("--run-time", help="e.g. 20s or 2m, ramp-up included (the figures leave the ramp out)")
    comp.add_argument("--min-wait", type=float, help="seconds a user waits between requests, at least")
    comp.add_argument("--max-wait", type=float, help="... and at most")
    comp.add_argument(
        "--request-timeout", type=float, default=10.0, help="seconds before a request fails (default: 10)"
    )
    comp.add_argument(
        "--modes", nargs="+", choices=[*ALL_MODES, "all"], default=list(MODES), help="default: the three; all: five"
    )
    comp.add_argument("--processes", type=int, default=1, help="locust processes (its own workers; default: 1)")
    comp.add_argument("--work-ms", type=float, help="work per request, in ms (default: none)")
    comp.add_argument("--work-kind", choices=("io", "cpu"), help="io: sleep (the default); cpu: compute")
    comp.add_argument("--start-method", choices=("fork", "spawn", "forkserver"), help="for the multiprocess server")
    comp.add_argument(
        "--out",
        type=Path,
        help="where the files go (default: results/, results/sweep/, results/lesson/ or results/timeline/)",
    )
    comp.set_defaults(run=cmd_compare)

    course = commands.add_parser("course", help="the course workflow on nbgrader")
    actions = course.add_subparsers(dest="action", required=True)
    init = actions.add_parser("init", help="create an nbgrader course folder for the kit")
    init.add_argument("course", type=Path, metavar="COURSE_DIR")
    init.add_argument("--assignment", default="concurrency-lab", help="its name (default: %(default)s)")
    init.set_defaults(run=cmd_course)
    batch = actions.add_parser("grade", help="autograde the notebooks, grade the servers, fill the gradebook")
    batch.add_argument("course", type=Path, metavar="COURSE_DIR")
    batch.add_argument("assignment", metavar="NAME")
    batch.add_argument("--student", action="append", metavar="ID", help="only this student (repeatable)")
    batch.add_argument("--mode", action="append", choices=ALL_MODES, help="grade only this mode (repeatable)")
    batch.add_argument("--check", action="append", metavar="NAME", help="only these checks (repeatable)")
    batch.add_argument(
        "--jobs", type=at_least_one, default=1, metavar="N", help="grade N students' servers at once (default: 1)"
    )
    batch.add_argument(
        "--force", action="store_true", help="grade again students whose recorded result is of their submission"
    )
    batch.add_argument(
        "--shard",
        type=shard,
        default=(1, 1),
        metavar="K/N",
        help="grade the servers of the Kth of every N students only, into server-checks/ (record with `course record`)",
    )
    batch.set_defaults(run=cmd_course)
    gather = actions.add_parser("record", help="autograde the notebooks and record what `course grade --shard` wrote")
    gather.add_argument("course", type=Path, metavar="COURSE_DIR")
    gather.add_argument("assignment", metavar="NAME")
    gather.set_defaults(run=cmd_course)
    state = actions.add_parser("status", help="who is graded, not gradable, faulted, not graded yet, or missing")
    state.add_argument("course", type=Path, metavar="COURSE_DIR")
    state.add_argument("assignment", metavar="NAME")
    state.set_defaults(run=cmd_course)

    rubric = commands.add_parser("rubric", help="print the rubric (every check and its points) as Markdown")
    rubric.set_defaults(run=cmd_rubric)
    return top


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "grade")
    args = parser().parse_args(argv)
    return args.run(args)
