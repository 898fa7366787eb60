"""`predict` on a cohort, SIGKILLed at random times and resumed, against one uninterrupted run.

    python benchmarks/predict_resume.py [--scans 2000] [--workers 2] [--kills 2] [--seed 0] [--work_dir DIR]

Generates `--scans` synthetic scans (one visit each, the generator's voxels 3.9 times
coarser, so a scan costs the preprocessing of a real one on the tiny grid) into the work
dir, where later runs reuse them, and exports a freshly initialised slice_lstm on the
tiny grid. Then, each `python -m brainage_tf.predict --workers W` in its own process:

1. one uninterrupted run;
2. a run SIGKILLed at a random time, then `--resume` runs, each SIGKILLed at a random
   time, `--kills` kills in all, then a last `--resume` to the end.

It prints a table (seconds, seconds per scan, rows on disk after each kill, processes
left behind by the kill, the peak RSS of the command and of its largest worker, MB, from
/proc VmHWM) and whether the final CSV equals the uninterrupted one byte for byte; the
exit code is 1 when it does not, or when a kill left a process behind.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# Seconds between two reads of the processes' peak RSS.
SAMPLE_SECONDS = 0.2


def make_scans(work_dir: Path, count: int) -> Path:
    """A BIDS folder of `count` synthetic scans, generated once per work dir."""
    from brainage_tf.synthetic import CohortSpec, generate_cohort

    bids = work_dir / f"cohort_{count}"
    if not bids.exists():
        partial = work_dir / f"cohort_{count}.incomplete"
        generate_cohort(str(partial), CohortSpec(count, voxel_scale=3.9), progress=True)
        partial.rename(bids)
    return bids


def make_export(work_dir: Path) -> Path:
    """A freshly initialised slice_lstm on the tiny grid, exported as a trained run would be."""
    export = work_dir / "run" / "export" / "1"
    if export.exists():
        return export
    from brainage_tf.models import build_model
    from brainage_tf.preprocessing import GRIDS, PreprocessConfig
    from brainage_tf.preprocessing_record import preprocessing_record
    from brainage_tf.serving.export import export_run
    from brainage_tf.training.config import TrainConfig
    from brainage_tf.training.run_directory import RunDirectory

    record = preprocessing_record(PreprocessConfig(grid="tiny"))
    config = TrainConfig.demo().replace(dataset="synthetic_cohort/tiny", preprocessing=record)
    run = RunDirectory(work_dir / "run")
    run.start(config, resume=False)
    run.save_model(build_model(volume_shape=GRIDS["tiny"].shape, **config.model_arguments()))
    return export_run(run.path)


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), MB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_predict(command: list[str], out: Path, kill_after: float | None) -> dict:
    """One predict process, SIGKILLed after `kill_after` seconds (None: to the end)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    command_peak, worker_peak, children = 0.0, 0.0, set()
    while process.poll() is None:
        command_peak = max(command_peak, peak_rss_mb(process.pid))
        below = descendants(process.pid)
        children |= below
        worker_peak = max([worker_peak, *(peak_rss_mb(pid) for pid in below)])
        if kill_after is not None and time.perf_counter() - started >= kill_after:
            process.kill()
            process.wait()
            break
        time.sleep(SAMPLE_SECONDS)
    seconds = time.perf_counter() - started
    stderr = process.stderr.read()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    partial = out.with_name(out.name + ".partial")
    on_disk = len(partial.read_text().splitlines()) - 1 if partial.exists() else None
    return dict(
        seconds=seconds,
        killed=kill_after is not None and process.returncode == -signal.SIGKILL,
        returncode=process.returncode,
        rows_on_disk=on_disk,
        left_behind=sum(alive(pid) for pid in children),
        command_mb=command_peak,
        worker_mb=worker_peak,
        stderr=stderr,
    )


def main() -> int:
    """Runs the comparison and prints its table; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="Seed of the kill times.")
    parser.add_argument("--work_dir", type=Path, default=Path("benchmarks/predict_resume_work"))
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    bids, export = make_scans(args.work_dir, args.scans), make_export(args.work_dir)
    reference, resumed = args.work_dir / "uninterrupted.csv", args.work_dir / "resumed.csv"
    for path in args.work_dir.glob("*.csv*"):
        path.unlink()
    for path in args.work_dir.glob("*.json"):
        path.unlink()

    def command(out: Path, *flags: str) -> list[str]:
        base = [sys.executable, "-m", "brainage_tf.predict", "--model", str(export), "--bids", str(bids)]
        return [*base, "--out", str(out), "--workers", str(args.workers), *flags]

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    rows = [("uninterrupted", run_predict(command(reference), reference, None))]
    full = rows[0][1]["seconds"]
    rng = np.random.default_rng(args.seed)
    for kill in range(args.kills):
        # Within the first 10-90 % of what an uninterrupted run takes, so a kill lands mid-run.
        after = float(rng.uniform(0.1, 0.9)) * full
        flags = ("--resume",) if kill else ()
        rows.append(
            (f"kill {kill + 1} after {after:.0f} s", run_predict(command(resumed, *flags), resumed, after))
        )
    rows.append(("last resume", run_predict(command(resumed, "--resume"), resumed, None)))

    print(f"predict on {args.scans} scans of the tiny grid, --workers {args.workers}, export {export}")
    print("| run | seconds | s/scan | exit | rows on disk after | left behind | command MB | worker MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, row in rows:
        on_disk = "" if row["rows_on_disk"] is None else row["rows_on_disk"]
        print(
            f"| {name} | {row['seconds']:.1f} | {row['seconds'] / args.scans:.3f} | {row['returncode']} "
            f"| {on_disk} | {row['left_behind']} | {row['command_mb']:.0f} | {row['worker_mb']:.0f} |"
        )
    interrupted = sum(row["seconds"] for _, row in rows[1:])
    equal = resumed.is_file() and resumed.read_bytes() == reference.read_bytes()
    print(f"killed and resumed: {interrupted:.1f} s in all ({interrupted / full:.2f}x the uninterrupted run)")
    print(f"final CSV equals the uninterrupted run's byte for byte: {equal}")
    left = sum(row["left_behind"] for _, row in rows)
    if not all(row["killed"] for _, row in rows[1:-1]):
        print("a kill came after its run had ended: choose another --seed")
    return 0 if equal and left == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
