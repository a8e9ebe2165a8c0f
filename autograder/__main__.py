"""Command line: ``python -m autograder {release,grade} ...`` (see the README's instructor section)."""

from __future__ import annotations

import argparse
import collections
import os
import pathlib
import re
import sys
import tempfile

from .config import course_root, lesson_ids


def _usage_error(message: str) -> int:
    print(f"autograder: error: {message}", file=sys.stderr)
    return 2


def cmd_release(args: argparse.Namespace) -> int:
    from .release import ReleaseError, link_problems, link_target, release, retarget

    root = course_root()
    try:
        repository, branch, source = link_target(root, args.repository, args.branch, keep=args.keep_links or args.check)
        if args.check:
            problems = link_problems(root, args.repository, args.branch)
            stale = release(root, check=True)
        else:
            changed = retarget(root, repository, branch)
            stale = release(root)
    except ReleaseError as exc:
        print(f"autograder: {exc}", file=sys.stderr)
        return 1
    if args.check:
        from cnn_course.links import origin

        found, _ = origin(root)
        if found and found != repository:
            print(f"note: origin is {found}; `python -m autograder release` would point the links there")
        if problems:
            print("links are stale; run `python -m autograder release`:", *problems, sep="\n  ")
        if stale:
            print("lessons/ is stale; run `python -m autograder release`:", *stale, sep="\n  ")
        if problems or stale:
            return 1
        print(f"lessons/ is up to date ({len(lesson_ids(root))} lessons); links name {repository} (branch {branch})")
        return 0
    print(f"links name {repository} (branch {branch}, from {source})" + (": cnn_course/links.py rewritten" if changed else ""))
    print(f"released {len(lesson_ids(root))} lessons into lessons/" + (f" ({len(stale)} files changed)" if stale else ""))
    return 0


def parse_shard(text: str, environ: dict | None = None) -> tuple[int, int]:
    """``I/N`` (1 <= I <= N), or ``VAR/N``: the index is environment variable VAR, counted from 0.

    ``JOB_COMPLETION_INDEX/N`` is a Kubernetes Indexed Job's pod (0 to N-1) grading shard
    index+1 of N; the name is written without ``$``, so no shell can expand it first.
    """
    environ = os.environ if environ is None else environ
    index, _, count = text.partition("/")
    try:
        n = int(count)
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", index):
            if index not in environ:
                raise ValueError(f"--shard {text}: the environment variable {index} is not set")
            i = int(environ[index]) + 1
            if not 1 <= i <= n:
                raise ValueError(f"--shard {text}: {index}={environ[index]}, expected 0 to {n - 1}")
        else:
            i = int(index)
        if not 1 <= i <= n:
            raise ValueError
    except ValueError as exc:
        raise ValueError(str(exc) if str(exc).startswith("--shard") else
                         f"--shard must be I/N with 1 <= I <= N, or VAR/N with VAR an index from 0, got {text}") from None
    return i, n


def cmd_grade(args: argparse.Namespace) -> int:
    from .collect import collect, students
    from .grade import NOT_GRADED, grade_all, prepare_workspace
    from .report import write_report

    root = course_root()
    submissions_dir = pathlib.Path(args.submissions)
    if not submissions_dir.is_dir():
        return _usage_error(f"no such folder: {submissions_dir}")
    known = lesson_ids(root)
    if args.lessons:
        lessons = [x.strip() for x in args.lessons.split(",") if x.strip()]
        unknown = [x for x in lessons if x not in known]
        if unknown:
            return _usage_error(f"unknown lesson {', '.join(unknown)}; lessons are {', '.join(known)}")
    else:
        present = {p.name for sid in students(submissions_dir) for p in (submissions_dir / sid).iterdir() if p.is_dir()}
        lessons = [x for x in known if x in present]
        if not lessons:
            return _usage_error(f"no lesson folders under {submissions_dir}/<student_id>/; expected one of {', '.join(known)}")
    if args.jobs < 1:
        return _usage_error("--jobs must be at least 1")
    shard = None
    if args.shard:
        try:
            shard = parse_shard(args.shard)
        except ValueError as exc:
            return _usage_error(str(exc))
    if args.accept_weak_isolation:
        os.environ["CNN_GRADER_ACCEPT_WEAK_ISOLATION"] = "1"  # the workers read it too
    from .isolation import accept_weak, strict_problem

    problem = strict_problem()
    if problem and not accept_weak():
        print(f"autograder: refusing to grade: student code cannot be sandboxed on this machine: {problem}.\n"
              "Fix that (python -m autograder doctor shows what is missing), or pass --accept-weak-isolation to grade\n"
              "with only a fresh folder and resource limits: student code could then read your files, reach the\n"
              "network and signal your processes.", file=sys.stderr)
        return 2
    if problem:
        print(f"warning: grading with weak isolation ({problem})", file=sys.stderr)
    out = pathlib.Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    db_url = args.db or f"sqlite:///{out / 'gradebook.db'}"
    subs = collect(submissions_dir.resolve(), lessons)
    if shard is not None:  # disjoint students per machine, stable across runs: the i-th of every n in sorted order
        ids = sorted({s.student_id for s in subs})
        mine = set(ids[shard[0] - 1::shard[1]])
        subs = [s for s in subs if s.student_id in mine]
    with tempfile.TemporaryDirectory(prefix="cnn-grade-") as work:
        work = pathlib.Path(work)
        max_scores = prepare_workspace(root, work, lessons, db_url)
        hide = [str(submissions_dir.resolve()), str(out)]
        subs = grade_all(subs, work, db_url, jobs=args.jobs, progress=not args.quiet, hide=hide,
                         verify=not args.no_verify)
        csv_path = write_report(subs, out, max_scores)
    counts = collections.Counter(s.status for s in subs)
    print(f"graded {len(subs)} submissions ({', '.join(f'{n} {k}' for k, n in sorted(counts.items()))}); "
          f"grades in {csv_path}, feedback in {out / 'feedback'}")
    unchecked = sorted({s.lesson for s in subs if s.reason.startswith(NOT_GRADED)})
    if unchecked:
        print(f"autograder: {', '.join(unchecked)} not graded: the instructor's own solution did not get full marks "
              "through the grader on this machine (the reason column says what failed)", file=sys.stderr)
        return 3
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import read_gradebook, read_roster, roster_matches, table, write

    source = pathlib.Path(args.gradebook)
    if "://" in args.gradebook:
        db_url = args.gradebook
    elif (source / "gradebook.db").is_file():
        db_url = f"sqlite:///{(source / 'gradebook.db').resolve()}"
    else:
        return _usage_error(f"no gradebook: {source / 'gradebook.db'} does not exist (give grade's --out folder or --db URL)")
    lessons = [x.strip() for x in args.lessons.split(",") if x.strip()] if args.lessons else None
    roster = None
    if args.roster:
        if not pathlib.Path(args.roster).is_file():
            return _usage_error(f"no such file: {args.roster}")
        roster = pathlib.Path(args.roster).read_text(encoding="utf-8-sig")
    try:
        book = read_gradebook(db_url, lessons)
    except ValueError as exc:
        return _usage_error(str(exc))
    rows, unmatched = table(book, args.format, roster, args.missing_as_zero)
    if roster is not None and args.format != "csv":
        matched = collections.Counter(column for _, column in roster_matches(
            book.students, args.format, read_roster(roster)[1]).values())
        if book.students and not matched:  # a header-only file would import as nothing, silently
            print(f"autograder: the roster {args.roster} matches none of the {len(book.students)} graded students "
                  f"({', '.join(book.students[:5])}{' ...' if len(book.students) > 5 else ''}); nothing written. Is it "
                  f"the {args.format} export of this course, and are the submission folders named by login or id?",
                  file=sys.stderr)
            return 1
        print("matched by " + ", ".join(f"{column} ({n})" for column, n in matched.most_common()))
    pathlib.Path(args.to).write_text(write(rows), encoding="utf-8", newline="")
    print(f"wrote {args.to}: {args.format}, {len(book.students) - len(unmatched)} students, "
          f"lessons {', '.join(x for x, _ in book.lessons) or 'none'}")
    if unmatched:
        print(f"warning: not in the roster, so not exported: {', '.join(unmatched)}", file=sys.stderr)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """What isolation this machine gives student code, guarantee by guarantee (see the README)."""
    from .config import KERNEL_LIMITS, hidden_paths
    from .isolation import IsolationUnavailable, exposed_paths, probe, start_zygote, stop_zygote, strict_problem

    problem = strict_problem()
    print("bubblewrap sandbox: " + ("available" if not problem else f"NOT available: {problem}"))
    hidden = hidden_paths()
    exposed = exposed_paths(hidden)
    print("read-only in the sandbox besides the system: " + ", ".join(exposed))
    # Everything in the hidden folders, except the way down to what is exposed on purpose.
    look_for = [os.path.join(h, name) for h in hidden if os.path.isdir(h) for name in os.listdir(h)]
    look_for = [p for p in look_for if not any(e == p or e.startswith(p + os.sep) for e in exposed)]
    try:
        start_zygote([])
        facts = probe(look_for)
    except IsolationUnavailable:
        facts = None
    finally:
        stop_zygote()
    if facts is None:
        print("grade refuses to run here unless given --accept-weak-isolation (then: a fresh folder and limits only)")
        return 1
    checks = [
        ("unprivileged uid", facts["uid"] != 0, f"uid {facts['uid']}"),
        ("no capabilities, no_new_privs", facts["cap_eff"] == "0000000000000000" and facts["no_new_privs"] == "1",
         f"CapEff {facts['cap_eff']}, NoNewPrivs {facts['no_new_privs']}"),
        ("mounts cannot be undone", facts["umount_refused"],
         "umount /tmp refused" if facts["umount_refused"] else "umount worked"),
        ("own PID namespace", facts["processes"] == 1, f"{facts['processes']} process(es) visible"),
        ("network: loopback only", facts["interfaces"] == ["lo"], f"interfaces {facts['interfaces']}"),
        ("private /tmp, /dev/shm and working folder", facts["tmp_is_workdir_fs"], "one tmpfs per process"),
        ("disk limit", facts["workdir_mib"] <= KERNEL_LIMITS["disk_mib"], f"{facts['workdir_mib']} MiB"),
        ("course, workspace, home hidden", not facts["visible"], "none visible" if not facts["visible"]
         else "visible: " + ", ".join(facts["visible"])),
    ]
    for name, ok, detail in checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}")
    limits = ", ".join(f"{k}={v}" for k, v in KERNEL_LIMITS.items())
    print(f"  limits per process: {limits}")
    return 0 if facts["strict"] and all(ok for _, ok, _ in checks) else 1


def cmd_check(args: argparse.Namespace) -> int:
    from .check import check

    return check(pathlib.Path(args.notebook), timeout=args.timeout)


def cmd_collect_zip(args: argparse.Namespace) -> int:
    from .lms import collect_zip, summary

    archive = pathlib.Path(args.archive)
    if not archive.is_file():
        return _usage_error(f"no such file: {archive}")
    if args.lesson not in lesson_ids(course_root()):
        return _usage_error(f"unknown lesson {args.lesson}")
    try:
        entries = collect_zip(archive, args.lesson, pathlib.Path(args.into), args.regexp)
    except RuntimeError as exc:
        print(f"autograder: {exc}", file=sys.stderr)
        return 1
    print(summary(entries, pathlib.Path(args.into), args.lesson))
    print(f"now run: python -m autograder grade {args.into} --out OUT")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description="Release and grade the CNN course with nbgrader.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("release", help="regenerate lessons/ from solutions/")
    p.add_argument("--check", action="store_true",
                   help="change nothing; exit 1 when lessons/, a lesson header or the README table is stale "
                        "(compared with cnn_course/links.py, never with origin)")
    p.add_argument("--repository", help="OWNER/NAME on GitHub that every link names (default: the origin remote "
                                        "when it is on GitHub, else what cnn_course/links.py records)")
    p.add_argument("--branch", help="the branch learners open (default: origin's default branch, else links.py's)")
    p.add_argument("--keep-links", action="store_true",
                   help="ignore origin: keep the repository links.py records (a pull request from a fork)")
    p.set_defaults(func=cmd_release)
    p = sub.add_parser("grade", help="grade SUBMISSIONS/<student_id>/<lesson>/<lesson>.ipynb")
    p.add_argument("submissions", help="folder of submissions, one sub-folder per student")
    p.add_argument("--out", required=True, help="where grades.csv, feedback/ and gradebook.db go")
    p.add_argument("--lessons", help="comma-separated lesson ids (default: every lesson present)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="notebooks graded in parallel")
    p.add_argument("--db", help="SQLAlchemy URL of the gradebook (default: sqlite in --out)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--shard", help="I/N: grade only the I-th of N disjoint sets of students (several machines, "
                                   "one --db); grades.csv then lists this shard's students. VAR/N reads the index "
                                   "from environment variable VAR, counted from 0 (JOB_COMPLETION_INDEX/N in a "
                                   "Kubernetes Indexed Job)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the out-of-kernel verification of passing test cells (faster, easier to fool)")
    p.add_argument("--accept-weak-isolation", action="store_true",
                   help="grade even where student code cannot be sandboxed (no bubblewrap or namespaces): "
                        "only a fresh folder and resource limits then")
    p.set_defaults(func=cmd_grade)
    p = sub.add_parser("collect-zip", help="unpack an LMS download (zip) into SUBMISSIONS with nbgrader's zip_collect")
    p.add_argument("archive", help="the zip file downloaded from the LMS")
    p.add_argument("--lesson", required=True, help="lesson id, e.g. 02_convolution")
    p.add_argument("--into", required=True, help="SUBMISSIONS folder to fill (nbgrader's submitted layout)")
    p.add_argument("--regexp", help="file-name regular expression with (?P<student_id>...) and (?P<file_id>...)")
    p.set_defaults(func=cmd_collect_zip)
    p = sub.add_parser("export", help="write the gradebook as a file Canvas or Moodle imports (or a plain table)")
    p.add_argument("gradebook", help="grade's --out folder (its gradebook.db) or the --db SQLAlchemy URL")
    p.add_argument("--format", choices=["canvas", "moodle", "csv"], required=True)
    p.add_argument("--to", required=True, help="the CSV file to write")
    p.add_argument("--lessons", help="comma-separated lesson ids (default: every lesson in the gradebook worth points)")
    p.add_argument("--roster", help="the LMS's own gradebook export: its student ids and assignment columns are used")
    p.add_argument("--missing-as-zero", action="store_true", help="0 instead of a blank where a student has no grade")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("doctor", help="print what isolation this machine gives student code (exit 1 if incomplete)")
    p.set_defaults(func=cmd_doctor)
    p = sub.add_parser("check", help="run a notebook's visible tests; exit 1 if any fails (for students)")
    p.add_argument("notebook", help="path to the notebook, e.g. lessons/02_convolution/02_convolution.ipynb")
    p.add_argument("--timeout", type=int, default=120, help="seconds per cell")
    p.set_defaults(func=cmd_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
