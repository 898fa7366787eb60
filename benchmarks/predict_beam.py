"""`predict` locally and on Beam runners over the same scans: equal CSVs, scans/hour, peak RSS, a worker kill.

    python benchmarks/predict_beam.py [--scans 200] [--work_dir DIR] [--kill_at_rows N] [--kill_timeout S]

Reuses `benchmarks/predict_resume.py`'s synthetic scans (one visit each, tiny grid) and its
freshly initialised slice_lstm export, here given training ranges that flag every scan out of
distribution, plus one corrupt file, so failed and OOD rows are compared too. Each run is
`python -m brainage_tf.predict` in its own process:

1. local: the process pool, `--workers 2` (the reference CSV);
2. DirectRunner, `direct_running_mode=multi_processing,direct_num_workers=2`;
3. PortableRunner with an external pool of 2 SDK workers, through `tfds_builders.job_service`
   (Beam's job server with Flink's `sdk_worker_parallelism`; `tfds_builders.portable`), as in
   docs/ingest.md.

It prints a table (seconds, scans per hour, peak RSS of the command and of its largest
descendant or pool worker, MB, from /proc VmHWM) and, for each Beam run, whether its CSV
equals the local one (same rows and cells, numbers within 1e-5). With `--kill_at_rows N` it
then starts a portable-runner job, SIGKILLs one of the pool's 2 SDK workers once the workers
have written N rows (mid-job, whatever the machine's speed), reports what the command did
(SIGTERM to it after `--kill_timeout` seconds if it hangs, SIGKILL 60 s later), then reruns
with `--resume` and compares.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from predict_resume import SAMPLE_SECONDS, descendants, make_export, make_scans, peak_rss_mb

from brainage_tf.serving.beam_predict import ROWS_SUFFIX
from brainage_tf.serving.metadata import METADATA_ASSET
from tfds_builders.portable import JobService, WorkerPool, free_port, portable_options

# Cells of these columns are numbers compared within TOLERANCE; the others exactly.
NUMERIC = ("age", "predicted_age", "brain_age_gap", "corrected_predicted_age", "interval_low",
           "interval_high", "registration_ncc")  # fmt: skip
TOLERANCE = 1e-5
# Seconds between two counts of the rows written, while waiting to kill: short, the rows come fast.
KILL_POLL_SECONDS = 0.02
# SDK workers of the portable runs.
PORTABLE_WORKERS = 2
# Seconds a hung command gets to end after SIGTERM before it is SIGKILLed.
TERM_GRACE_SECONDS = 60


def differences(expected: Path, actual: Path) -> list[str]:
    """How two predictions CSVs differ: rows, columns, cells (numbers beyond TOLERANCE)."""
    if not actual.exists():
        return [f"{actual} was not written"]
    with open(expected, newline="") as a, open(actual, newline="") as b:
        want, got = list(csv.DictReader(a)), list(csv.DictReader(b))
    if [list(r) for r in want] != [list(r) for r in got] or len(want) != len(got):
        return [f"columns or row count differ: {len(want)} against {len(got)} rows"]
    found = []
    for first, second in zip(want, got, strict=True):
        for column, value in first.items():
            other = second[column]
            numeric = column in NUMERIC and value not in ("", "nan") and other not in ("", "nan")
            if numeric and math.isfinite(float(value)):
                same = abs(float(value) - float(other)) <= TOLERANCE
            else:
                same = value == other
            if not same:
                found.append(f"{first['path']} {column}: {value!r} against {other!r}")
    return found


def rows_written(folder: Path) -> int:
    """Rows the workers have written so far into a job's rows folder."""
    return sum(len(path.read_bytes().splitlines()) for path in folder.glob("*.jsonl"))


def measure(command: list[str], watch: list[int]) -> dict:
    """Runs one command to its end; peak RSS of it and of its and `watch`'s descendants."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    command_peak, worker_peak = 0.0, 0.0
    while process.poll() is None:
        command_peak = max(command_peak, peak_rss_mb(process.pid))
        below = descendants(process.pid).union(*(descendants(pid) for pid in watch))
        worker_peak = max([worker_peak, *(peak_rss_mb(pid) for pid in below)])
        time.sleep(SAMPLE_SECONDS)
    stdout, stderr = process.communicate()
    return dict(seconds=time.perf_counter() - started, returncode=process.returncode, command_mb=command_peak,
                worker_mb=worker_peak, stdout=stdout, stderr=stderr)  # fmt: skip


def run_with_worker_kill(command: list[str], rows: int, folder: Path, pool_pid: int, timeout: float) -> dict:
    """Runs a portable job; SIGKILLs one SDK worker (a new child of the pool) once `folder` holds `rows` rows.

    A command that has not ended `timeout` seconds after it started (a hung job) gets SIGTERM, as a
    user's Ctrl-C or a scheduler would send, then SIGKILL after TERM_GRACE_SECONDS.
    """
    before = descendants(pool_pid)
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    worker, killed = None, ""
    while process.poll() is None and time.perf_counter() - started < timeout:
        if worker is None:
            new = sorted(descendants(pool_pid) - before)
            worker = new[0] if new else None
        elif not killed and rows_written(folder) >= rows:
            os.kill(worker, signal.SIGKILL)
            killed = f"SIGKILLed SDK worker {worker} at {time.perf_counter() - started:.1f} s"
            killed += f" with {rows_written(folder)} rows written"
        time.sleep(KILL_POLL_SECONDS)
    if process.poll() is None:
        process.terminate()
        killed += f"; the command did not end within {timeout:g} s: SIGTERM"
        try:
            process.wait(TERM_GRACE_SECONDS)
            killed += f", after which it exited within {time.perf_counter() - started - timeout:.1f} s"
        except subprocess.TimeoutExpired:
            process.kill()
            killed += f", which it ignored for {TERM_GRACE_SECONDS} s: SIGKILLed it"
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    return dict(seconds=seconds, returncode=process.returncode, killed=killed or "no kill", stdout=stdout,
                stderr=stderr)  # fmt: skip


def main() -> int:
    """Runs the comparison and prints its table; returns 1 when a Beam CSV differs from the local one."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=200)
    parser.add_argument("--work_dir", type=Path, default=Path("benchmarks/predict_resume_work"))
    parser.add_argument(
        "--kill_at_rows", type=int, help="Also kill a portable job's SDK worker after N rows."
    )
    parser.add_argument(
        "--kill_timeout", type=float, default=600, help="Seconds before a hung job is killed."
    )
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["direct", "portable"], help="Runs to leave out."
    )
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    bids, export = make_scans(args.work_dir, args.scans), make_export(args.work_dir)
    flagged = args.work_dir / "export_flagging"
    if not flagged.exists():  # training ranges no scan fits: every ok row carries an OOD reason
        shutil.copytree(export, flagged)
        asset = flagged / "assets" / METADATA_ASSET
        reference = {"age": [0.0, 22.0], "registration_ncc_min": 0.0,
                     "intensity_mean": [5.0, 6.0], "intensity_std": [0.0, 10.0]}  # fmt: skip
        asset.write_text(json.dumps({**json.loads(asset.read_text()), "reference": reference}))
    corrupt = args.work_dir / "corrupt.nii.gz"
    corrupt.write_bytes(b"this is not a NIfTI file" * 10)
    scans = [*sorted(str(p) for p in bids.rglob("*_T1w.nii.gz")), str(corrupt)]
    outputs = args.work_dir / "beam_outputs"
    outputs.mkdir(exist_ok=True)
    for path in outputs.iterdir():
        if path.is_file():
            path.unlink()

    def command(out: Path, *flags: str) -> list[str]:
        base = [sys.executable, "-m", "brainage_tf.predict", "--model", str(flagged), *scans]
        return [*base, "--out", str(out), *flags]

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    local = outputs / "local.csv"
    runs = [("local, process pool, --workers 2", local, measure(command(local, "--workers", "2"), []))]
    if "direct" not in args.skip:
        out = outputs / "direct.csv"
        options = "direct_running_mode=multi_processing,direct_num_workers=2"
        beam = ("--runner", "DirectRunner", "--beam_pipeline_options", options)
        runs.append(("DirectRunner, multi_processing, 2 workers", out, measure(command(out, *beam), [])))
    pool = job_service = None
    try:
        if "portable" not in args.skip or args.kill_at_rows is not None:
            pool = WorkerPool(free_port(), args.work_dir / "worker_pool.log")
            job_service = JobService(free_port(), args.work_dir / "job_service.log")
        options = portable_options(pool.port, job_service.port, PORTABLE_WORKERS) if pool else ""
        portable = ("--beam_pipeline_options", options)
        services = [pool.pid, job_service.pid] if pool else []
        if "portable" not in args.skip:
            out = outputs / "portable.csv"
            name = f"PortableRunner, EXTERNAL pool, {PORTABLE_WORKERS} SDK workers"
            runs.append((name, out, measure(command(out, *portable), services)))
        print(
            f"predict on {len(scans)} scans ({args.scans} synthetic + 1 corrupt), tiny grid, export {flagged}"
        )
        print("| run | seconds | scans/hour | exit | command MB | largest worker MB | CSV equals local |")
        print("|---|---:|---:|---:|---:|---:|---|")
        unequal = 0
        for name, out, row in runs:
            found = differences(local, out) if out != local else []
            unequal += bool(found)
            equal = "reference" if out == local else ("yes" if not found else f"NO: {found[:3]}")
            rate = 3600 * len(scans) / row["seconds"]
            memory = f"{row['command_mb']:.0f} | {row['worker_mb']:.0f}"
            print(
                f"| {name} | {row['seconds']:.1f} | {rate:.0f} | {row['returncode']} | {memory} | {equal} |"
            )
            if row["returncode"] not in (0, 1):
                print(f"  stderr: {row['stderr'].strip().splitlines()[-3:]}")
        if args.kill_at_rows is not None:
            out = outputs / "killed.csv"
            folder = out.with_name(out.name + ROWS_SUFFIX)
            pid = pool.pid
            row = run_with_worker_kill(
                command(out, *portable), args.kill_at_rows, folder, pid, args.kill_timeout
            )
            partial = out.with_name(out.name + ".partial")
            kept = len(partial.read_text().splitlines()) - 1 if partial.exists() else None
            what = f"exit {row['returncode']} after {row['seconds']:.1f} s"
            print(f"{row['killed']}: {what}; CSV written: {out.exists()}; rows kept in the partial: {kept}, "
                  f"in the rows folder: {rows_written(folder)}")  # fmt: skip
            print(f"  stdout: {row['stdout'].strip()[-300:]!r}")
            print(f"  stderr (last line): {row['stderr'].strip().splitlines()[-1:]!r}")
            if out.exists():
                print(f"  finished CSV against local: {differences(local, out)[:5] or 'equal'}")
            again = measure(command(out, *portable, "--resume"), services)
            found = differences(local, out)
            unequal += bool(found)
            print(f"rerun with --resume: exit {again['returncode']} after {again['seconds']:.1f} s; "
                  f"CSV equals local: {'yes' if not found else found[:3]}")  # fmt: skip
    finally:
        for service in (job_service, pool):
            if service is not None:
                service.stop()
    return 1 if unequal else 0


if __name__ == "__main__":
    sys.exit(main())
