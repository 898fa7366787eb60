"""Times the synthetic_cohort TFDS build (Beam ingest) for 1 and more workers.

Generates the synthetic BIDS cohorts once (timed separately), then builds the
dataset from them with the Beam DirectRunner: in_memory for 1 worker (the
`tfds build` default), multi_processing for more. Prints a table of subjects,
grid, workers, seconds and examples per second. `benchmarks/run.py` calls the same
functions for its ingest-scaling and input-pipeline sections.

    python benchmarks/ingest_build.py --subjects 200 --grid small --workers 1 2
    python benchmarks/ingest_build.py --subjects 20 --grid paper --workers 2 --work_dir W --json

`--breakdown` also times where a build's time goes: `preprocess_scan` over every scan in
this process (the first scan, which loads the template, apart), and the DirectRunner
in multi_processing mode with 1 worker beside in_memory (the cost of worker processes).
`--portable` also builds through Beam's portable runner with as many SDK worker processes
as the largest `--workers` (the path Flink, Spark and Dataflow take; `tfds_builders.portable`,
`tfds_builders.job_service`) and prints whether it prepared what the first DirectRunner build did:

    python benchmarks/ingest_build.py --subjects 200 --grid small --workers 1 2 --portable

`--json` prints one JSON line instead of the table (what `benchmarks/run.py` reads:
it runs this script as its own process, so Beam's workers start as they would for a
user, and the benchmark's process never registers the builder, whose prepared
dataset it then loads from the files as `brainage_tf.data` does).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tensorflow_datasets as tfds
from apache_beam.options.pipeline_options import PipelineOptions
from etils import epath
from timing import time_calls

from brainage_tf.ingest.summary import INGEST_SUMMARY_NAME, IngestSummary
from tfds_builders.portable import JobService, WorkerPool, compare_prepared, free_port, portable_options
from tfds_builders.prepare import DOWNLOADS_FOLDER, parse_beam_options
from tfds_builders.synthetic_cohort.synthetic_cohort_dataset_builder import (
    GENERATED_FOLDER,
    Builder,
    SyntheticConfig,
    cohort_folder_name,
    ensure_generated,
)


def beam_options(workers: int, processes: bool = False) -> PipelineOptions:
    """DirectRunner options: in_memory for one worker (unless `processes`), multi_processing for more."""
    if workers == 1 and not processes:
        return PipelineOptions(["--direct_running_mode=in_memory"])
    return PipelineOptions(["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"])


def bench_config(subjects: int, grid: str, registration: str = "none") -> SyntheticConfig:
    """A synthetic_cohort config of `subjects` subjects (80 % discovery, 20 % replication)."""
    discovery = round(subjects * 0.8)
    return SyntheticConfig(
        name=f"{grid}{'_affine' if registration == 'affine' else ''}_bench{subjects}",
        grid=grid,
        registration=registration,
        discovery_subjects=discovery,
        replication_subjects=subjects - discovery,
    )


def generate(config: SyntheticConfig, work_dir: Path) -> tuple[float, list[Path]]:
    """Generates the config's BIDS cohorts under work_dir (reused when present).

    Returns:
        (seconds, the BIDS folders of the discovery and replication cohorts).
    """
    generated = epath.Path(work_dir / DOWNLOADS_FOLDER / GENERATED_FOLDER)
    generated.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for _, spec in config.cohorts():
        ensure_generated(generated, spec)
    folders = [Path(generated / cohort_folder_name(spec)) for _, spec in config.cohorts()]
    return time.perf_counter() - start, folders


def build(
    config: SyntheticConfig,
    work_dir: Path,
    workers: int,
    processes: bool = False,
    portable: tuple[int, int] | None = None,
) -> tuple[float, IngestSummary, str]:
    """Builds the dataset into a fresh `work_dir/data_<grid>_w<workers>`; generate() must have run.

    Args:
        config: The cohort and grid.
        work_dir: Holds the generated cohort; gets the data dir.
        workers: DirectRunner workers.
        processes: Run one worker as a separate process too (multi_processing mode).
        portable: Build on the portable runner instead: the ports of the SDK worker pool and
            of the job service, which runs `workers` SDK workers per job.

    Returns:
        (seconds, the ingest summary, the TFDS data dir).
    """
    if portable is None:
        options, label = beam_options(workers, processes), f"w{workers}{'p' if processes else ''}"
    else:
        text = portable_options(*portable, workers=workers)
        options, label = PipelineOptions(parse_beam_options(text)), f"portable_w{workers}"
    data_dir = work_dir / f"data_{config.name}_{label}"
    shutil.rmtree(data_dir, ignore_errors=True)
    builder = Builder(config=config, data_dir=str(data_dir))
    start = time.perf_counter()
    builder.download_and_prepare(
        download_dir=str(work_dir / DOWNLOADS_FOLDER),
        download_config=tfds.download.DownloadConfig(beam_options=options),
    )
    seconds = time.perf_counter() - start
    return seconds, IngestSummary.read(Path(builder.data_path) / INGEST_SUMMARY_NAME), str(data_dir)


def build_portable(config: SyntheticConfig, work_dir: Path, workers: int) -> tuple[float, IngestSummary, str]:
    """`build` on the portable runner with `workers` SDK workers; its pool and job service stopped after."""
    pool = WorkerPool(free_port(), work_dir / "worker_pool.log")
    try:
        job_service = JobService(free_port(), work_dir / "job_service.log")
        try:
            return build(config, work_dir, workers, portable=(pool.port, job_service.port))
        finally:
            job_service.stop()
    finally:
        pool.stop()


def warm_template_cache(grid: str) -> None:
    """Saves the template on `grid` to the on-disk cache from a child process, so every build finds it.

    Without this the first build alone would pay nilearn's import and the resampling (2-3 s).
    """
    code = f"from brainage_tf import preprocessing as p; p.template_on_grid(p.get_grid({grid!r}))"
    subprocess.run([sys.executable, "-c", code], check=True)


def serial_preprocessing(config: SyntheticConfig, bids_folders: list[Path]) -> tuple[float, float, int]:
    """`preprocess_scan` over every generated scan in this process.

    Returns:
        (seconds of the first scan, which also loads the template from the disk cache,
        median seconds of the others, number of scans).
    """
    from brainage_tf.preprocessing import preprocess_scan

    scans = sorted(path for folder in bids_folders for path in folder.glob("sub-*/anat/*_T1w.nii*"))
    remaining = iter(scans)
    timing = time_calls(lambda: preprocess_scan(next(remaining), config.preprocess_config), len(scans) - 1)
    return timing.first, timing.median, len(scans)


def main() -> None:
    """Parses arguments, generates once, builds once per worker count, prints the table (or JSON)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--subjects", type=int, default=200, help="total subjects, 80%% discovery, 20%% replication"
    )
    parser.add_argument("--grid", default="small", choices=("tiny", "small", "paper"))
    parser.add_argument("--registration", default="none", choices=("none", "affine"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--work_dir", default=None, help="keeps generated cohorts between runs (default: temp dir)"
    )
    parser.add_argument("--json", action="store_true", help="Print one JSON line instead of the table.")
    parser.add_argument(
        "--portable", action="store_true", help="Also build on the portable runner and compare the datasets."
    )
    parser.add_argument(
        "--breakdown", action="store_true", help="Also time serial preprocessing and 1 process."
    )
    args = parser.parse_args()

    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="ingest_bench_"))
    config = bench_config(args.subjects, args.grid, args.registration)
    generation_seconds, bids_folders = generate(config, work_dir)
    warm_template_cache(args.grid)
    # Before any build: an in_memory build would load the template into this process.
    serial = serial_preprocessing(config, bids_folders) if args.breakdown else None
    rows = []
    for workers in args.workers:
        seconds, summary, data_dir = build(config, work_dir, workers)
        rows.append((workers, seconds, summary, data_dir))
    if serial is not None:
        first, per_scan, scans = serial
        seconds, _, _ = build(config, work_dir, 1, processes=True)
        print(
            f"preprocess_scan in one fresh process: first scan {first:.2f} s (template included), then "
            f"{per_scan:.3f} s per scan x {scans - 1}; multi_processing with 1 worker: {seconds:.1f} s"
        )
    portable = build_portable(config, work_dir, max(args.workers)) if args.portable else None
    if args.json:
        print(json.dumps(dict(
            generation_s=generation_seconds,
            bids=[str(folder) for folder in bids_folders],
            dataset=f"synthetic_cohort/{config.name}",
            rows=[dict(grid=args.grid, subjects=args.subjects, workers=workers, seconds=seconds,
                       examples=summary.examples_written, examples_per_s=summary.examples_written / seconds,
                       data_dir=data_dir)
                  for workers, seconds, summary, data_dir in rows],
        )))  # fmt: skip
        return

    print(f"\ngeneration of {args.subjects} synthetic subjects (once, all CPUs): {generation_seconds:.1f} s")
    print(
        f"{'subjects':>8} {'grid':>6} {'workers':>7} {'seconds':>8} {'examples/s':>10}"
        "  rows in / written / skipped"
    )
    for workers, seconds, summary, _ in rows:
        counts = f"{summary.rows_in} / {summary.examples_written} / {summary.skipped}"
        rate = summary.examples_written / seconds
        print(f"{args.subjects:>8} {args.grid:>6} {workers:>7} {seconds:>8.1f} {rate:>10.2f}  {counts}")
    if portable is not None:
        seconds, summary, data_dir = portable
        counts = f"{summary.rows_in} / {summary.examples_written} / {summary.skipped}"
        rate = summary.examples_written / seconds
        workers = max(args.workers)
        row = f"{args.subjects:>8} {args.grid:>6} {workers:>7} {seconds:>8.1f} {rate:>10.2f}  {counts}"
        print(f"{row}  (PortableRunner, tfds_builders.job_service, {workers} SDK worker processes of a pool)")
        reference = Path(rows[0][3]) / "synthetic_cohort" / config.name / str(Builder.VERSION)
        differences, compared = compare_prepared(
            reference, Path(data_dir) / reference.relative_to(rows[0][3])
        )
        print(f"portable vs {rows[0][0]} worker(s): {compared}" + "".join(f"\n  {d}" for d in differences))


if __name__ == "__main__":
    main()
