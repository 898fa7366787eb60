"""What the batch commands (`predict`, `explain`, `calibrate`) share on the command line: flags, errors."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from brainage_tf.console import add_verbose_argument
from brainage_tf.errors import JobFailedError, UsageError, one_line
from brainage_tf.serving.batch import Interrupted, signals_interrupt
from brainage_tf.serving.scans import ScanItem, scan_items
from brainage_tf.skull_strip import SKULL_STRIP_MODES

# Longest resume command printed in full (characters).
_LONGEST_RESUME_LINE = 300


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line and exit with status 2."""

    def error(self, message):  # one line, status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_scan_arguments(
    parser: argparse.ArgumentParser, default_workers: int, ages_required: bool = False
) -> None:
    """The scans, the export, the workers and `--resume`, as every batch command takes them.

    With `ages_required` (calibration), the scans come from exactly one of `--bids` and
    `--manifest`, which give ages: no positional scans and no `--resume`.
    """
    add = parser.add_argument
    if ages_required:
        parser.set_defaults(scans=[])
    else:
        add("scans", nargs="*", metavar="SCAN", help="Scan files (age unknown).")
    add("--model", required=True, metavar="EXPORT_DIR", help="An export version folder.")
    add_verbose_argument(parser)
    lists = parser.add_mutually_exclusive_group(required=True) if ages_required else parser
    lists.add_argument("--bids", metavar="DIR", help="BIDS folder: its T1w scans with their ages.")
    lists.add_argument(
        "--manifest", metavar="CSV", help="Manifest CSV/TSV: subject_id, age, path[, session]."
    )
    add(
        "--workers",
        type=int,
        default=default_workers,
        help="Preprocessing processes (default %(default)s; 0: in this process, without crash isolation).",
    )
    if not ages_required:
        add(
            "--resume",
            action="store_true",
            help="Continue an earlier run's output: keep its finished scans, "
            "redo failed and unfinished ones.",
        )
    add(
        "--skull-strip",
        choices=SKULL_STRIP_MODES,
        help="Fail unless the export was trained with this skull stripping (it always applies its own).",
    )
    add(
        "--max-voxels",
        type=int,
        metavar="N",
        help="Refuse images with more voxels than this, from their header (default: the package's limit).",
    )


def checked_scans(args: argparse.Namespace) -> list[ScanItem]:
    """The scans the arguments list, after the checks every batch command makes before heavy work.

    Raises:
        UsageError: Negative workers, no folder for `--out`, unreadable lists, or no scans.
    """
    if args.workers < 0:
        raise UsageError(f"--workers must be at least 0, got {args.workers}")
    if not args.out.parent.is_dir():
        raise UsageError(f"--out {args.out}: folder {args.out.parent} does not exist")
    items = scan_items(args.scans, args.bids, args.manifest)
    if not items:
        raise UsageError("no scans: give SCAN paths, --bids or --manifest")
    return items


def interrupted_message(prog: str, argv: Sequence[str] | None, interrupt: Interrupted) -> str:
    """The one line a batch command prints when SIGINT or SIGTERM stops it: what is kept, how to resume."""
    if interrupt.kept_in is None:  # stopped before any scan was started
        return f"{prog}: interrupted by {interrupt}"
    arguments = list(sys.argv[1:] if argv is None else argv)
    if "--resume" not in arguments:
        arguments.append("--resume")
    resume = shlex.join([*prog.split(), *arguments])
    if len(resume) > _LONGEST_RESUME_LINE:  # hundreds of scan paths: no one copies that line
        resume = "the same command plus --resume"
    return (
        f"interrupted by {interrupt}: {interrupt.finished} of {interrupt.total} scans finished, kept in "
        f"{interrupt.kept_in}; resume with: {resume}"
    )


def run_batch_command(
    prog: str,
    argv: Sequence[str] | None,
    work: Callable[[], dict[str, int]],
    verb: str,
    out: Path | Callable[[], Path],
) -> int:
    """Runs a batch command's work, SIGINT and SIGTERM interrupting it; returns the exit code.

    A usage error prints one line and gives 2; a failed job (`JobFailedError`) one line and 1; an
    interrupt prints what is kept and how to resume, and gives 128 + the signal; otherwise the
    counts are printed, e.g.
    "718 predicted, 2 failed: ages.csv", and the code is 1 when any scan failed.

    Args:
        prog: The command's name, for its messages.
        argv: Its arguments (None: sys.argv's), for the resume line.
        work: Everything the command does; returns {"ok", "failed", ...} counts.
        verb: What an ok scan was, e.g. "predicted".
        out: What the counts line names, or a function giving it once the work is done (a new version).
    """
    with signals_interrupt():
        try:
            counts = work()
        except UsageError as error:
            print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
            return 2
        except Interrupted as interrupt:
            print(interrupted_message(prog, argv, interrupt), file=sys.stderr)
            return interrupt.exit_code
        except JobFailedError as error:
            print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
            return 1
    print(f"{counts['ok']} {verb}, {counts['failed']} failed: {out() if callable(out) else out}")
    return 1 if counts["failed"] else 0
