"""Prepare the embedded synthetic cohort on first use, so the main job needs no download.

This is the one step that needs both the builders and the library's data layer,
so it lives above both: `brainage_tf.data` reads prepared datasets and never
imports `tfds_builders`; the entry points (`python -m brainage_tf.train`) call
`ensure_prepared` before they read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from brainage_tf import data
from brainage_tf.errors import DatasetError
from brainage_tf.ingest.summary import INGEST_SUMMARY_NAME, IngestSummary
from tfds_builders.prepare import DOWNLOADS_FOLDER

EMBEDDED_DATASET = "synthetic_cohort"
# Beam and TFDS log every stage at INFO, and Beam relays its workers' start-up warnings;
# the first run prints its own progress lines instead. TFDS's skip warnings (absl) still show.
_QUIET_LEVELS = {
    "absl": logging.WARNING,
    "tensorflow_datasets": logging.WARNING,
    "apache_beam": logging.ERROR,
}


def ensure_prepared(
    dataset: str,
    data_dir: str,
    *,
    log: Callable[[str], None] = print,
    verbose: bool = False,
    progress_bar: bool = False,
) -> None:
    """Builds `synthetic_cohort/<config>` in data_dir if it is not prepared; any other dataset is left alone.

    Args:
        dataset: TFDS name with config, e.g. "synthetic_cohort/small".
        data_dir: TFDS data dir.
        log: Progress printer.
        verbose: Show Beam's and TFDS's INFO logs.
        progress_bar: Show the package's progress bar while generating (for a terminal).

    Raises:
        DatasetError: The build failed.
    """
    name, _, config = dataset.partition("/")
    if name != EMBEDDED_DATASET:
        return
    # Registered, the builder's VERSION decides, not the files: a folder an older version prepared is rebuilt.
    from tfds_builders.synthetic_cohort.synthetic_cohort_dataset_builder import Builder

    if data.is_prepared(dataset, data_dir):
        return
    if config and config not in Builder.builder_configs:  # a JSON config is built by `tfds build` only
        configs = ", ".join(Builder.builder_configs)
        raise DatasetError(
            f"{dataset} is not prepared in {data_dir}, and {config!r} is not one of the builder's configs "
            f"({configs}); build it first: tfds build tfds_builders/synthetic_cohort "
            f'--data_dir {data_dir} --config \'{{"name": "{config}", ...}}\' (docs/ingest.md)'
        )
    log(f"building the embedded {dataset} dataset in {data_dir} (first run only)")
    try:
        summary_line = build_synthetic_cohort(
            config or "small", data_dir, log=log, verbose=verbose, progress_bar=progress_bar
        )
    except (ImportError, ValueError) as error:
        raise DatasetError(f"cannot build {dataset}: {error}") from None
    log(summary_line)


def build_synthetic_cohort(
    config: str,
    data_dir: str,
    *,
    log: Callable[[str], None] = print,
    verbose: bool = False,
    progress_bar: bool = False,
) -> str:
    """Generates the synthetic BIDS cohorts, then ingests them through Beam into TFDS.

    Args:
        config: Builder config name, e.g. "small" or "tiny".
        data_dir: TFDS data dir.
        log: Progress printer.
        verbose: Show Beam's and TFDS's INFO logs.
        progress_bar: Show the package's progress bar while generating (for a terminal).

    Returns:
        The ingest's closing line, "N rows in, M examples written, K skipped", with
        the path of the skip report.
    """
    import tensorflow_datasets as tfds
    from apache_beam.options.pipeline_options import PipelineOptions

    from tfds_builders.synthetic_cohort.synthetic_cohort_dataset_builder import (
        GENERATED_FOLDER,
        ensure_generated,
    )

    builder = tfds.builder(f"{EMBEDDED_DATASET}/{config}", data_dir=data_dir)
    download_dir = Path(data_dir) / DOWNLOADS_FOLDER
    # One Beam worker per core: 200 scans at the small grid build in 31 s instead of 47 s on 2 cores.
    workers = max(1, min(os.cpu_count() or 1, 8))
    for profile, spec in builder.builder_config.cohorts():
        log(
            f"generating the {profile} cohort: {spec.n_subjects} subjects aged "
            f"{spec.min_age:g}-{spec.max_age:g} y"
        )
        ensure_generated(
            download_dir / GENERATED_FOLDER,
            spec,
            workers=builder.builder_config.generator_workers,
            progress=progress_bar,
        )
    log(f"ingesting the scans through Beam on {workers} processes")
    started = time.perf_counter()
    beam_options = PipelineOptions(
        ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
        + ([] if verbose else ["--default_sdk_harness_log_level=WARNING"])
    )
    if not progress_bar:
        tfds.disable_progress_bar()  # TFDS's own bars ("Generating splits...") would redraw into a log
    with _quiet_logs(not verbose):
        builder.download_and_prepare(
            download_dir=str(download_dir),
            download_config=tfds.download.DownloadConfig(beam_options=beam_options),
        )
    summary = IngestSummary.read(Path(builder.data_dir) / INGEST_SUMMARY_NAME)
    return (
        f"{summary.line()} in {time.perf_counter() - started:.0f} s "
        f"(skip report: {Path(builder.data_dir) / summary.skip_report})"
    )


@contextlib.contextmanager
def _quiet_logs(enabled: bool):
    """Raises the chatty loggers to their quiet levels for the duration of a block (when enabled)."""
    loggers = {logging.getLogger(name): level for name, level in _QUIET_LEVELS.items()} if enabled else {}
    saved = {logger: logger.level for logger in loggers}
    for logger, level in loggers.items():
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, level in saved.items():
            logger.setLevel(level)
