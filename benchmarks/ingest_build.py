"""Times the synthetic_cohort TFDS build (Beam ingest) for 1 and more workers.

Generates the synthetic BIDS cohorts once (timed separately), then builds the
dataset from them with the Beam DirectRunner: in_memory for 1 worker (the
`tfds build` default), multi_processing for more. Prints a table of subjects,
grid, workers, seconds and examples per second.

    python benchmarks/ingest_build.py --subjects 200 --grid small --workers 1 2
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import tensorflow_datasets as tfds
from apache_beam.options.pipeline_options import PipelineOptions
from etils import epath

from brainage_tf.ingest.summary import INGEST_SUMMARY_NAME, IngestSummary
from tfds_builders.synthetic_cohort.synthetic_cohort_dataset_builder import (
    GENERATED_FOLDER,
    Builder,
    SyntheticConfig,
    ensure_generated,
)


def beam_options(workers: int) -> PipelineOptions:
    """DirectRunner options: in_memory for one worker, multi_processing for more."""
    if workers == 1:
        return PipelineOptions(["--direct_running_mode=in_memory"])
    return PipelineOptions(["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"])


def main() -> None:
    """Parses arguments, generates once, builds once per worker count, prints the table."""
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
    args = parser.parse_args()

    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="ingest_bench_"))
    discovery = round(args.subjects * 0.8)
    config = SyntheticConfig(
        name=f"{args.grid}_bench{args.subjects}",
        grid=args.grid,
        registration=args.registration,
        discovery_subjects=discovery,
        replication_subjects=args.subjects - discovery,
    )
    download_dir = work_dir / "downloads"
    generated = epath.Path(download_dir / GENERATED_FOLDER)
    generated.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for _, arguments in config.cohorts():
        ensure_generated(generated, arguments)
    generation_seconds = time.perf_counter() - start

    rows = []
    for workers in args.workers:
        data_dir = work_dir / f"data_w{workers}"
        shutil.rmtree(data_dir, ignore_errors=True)
        builder = Builder(config=config, data_dir=str(data_dir))
        start = time.perf_counter()
        builder.download_and_prepare(
            download_dir=str(download_dir),
            download_config=tfds.download.DownloadConfig(beam_options=beam_options(workers)),
        )
        seconds = time.perf_counter() - start
        summary = IngestSummary.read(Path(builder.data_path) / INGEST_SUMMARY_NAME)
        rows.append((args.subjects, args.grid, workers, seconds, summary.examples_written / seconds, summary))

    print(f"\ngeneration of {args.subjects} synthetic subjects (once, all CPUs): {generation_seconds:.1f} s")
    print(
        f"{'subjects':>8} {'grid':>6} {'workers':>7} {'seconds':>8} {'examples/s':>10}"
        "  rows in / written / skipped"
    )
    for subjects, grid, workers, seconds, rate, summary in rows:
        counts = f"{summary.rows_in} / {summary.examples_written} / {summary.skipped}"
        print(f"{subjects:>8} {grid:>6} {workers:>7} {seconds:>8.1f} {rate:>10.2f}  {counts}")


if __name__ == "__main__":
    main()
