"""Checks the command-line tests share (not shipped with the package)."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def assert_one_line_usage_errors(
    main: Callable[[Sequence[str]], int], cases: Mapping[str, Sequence[str]], tail: Sequence[str], capsys
) -> None:
    """Runs `main([*argv, *tail])` per case: each must exit 2 with one stderr line containing its key."""
    for expected, argv in cases.items():
        try:
            code = main([*argv, *tail])
        except SystemExit as exit_:  # argparse's own errors
            code = exit_.code
        error = capsys.readouterr().err
        assert code == 2 and expected in error and len(error.strip().splitlines()) == 1, (expected, error)


def export_copy_with_metadata(export_dir: Path, target: Path, **changes) -> Path:
    """A copy of an export whose metadata asset has `changes` applied: an export other versions wrote."""
    from brainage_tf.serving.metadata import METADATA_ASSET

    shutil.copytree(export_dir, target)
    asset = target / "assets" / METADATA_ASSET
    asset.write_text(json.dumps({**json.loads(asset.read_text()), **changes}))
    return target


# What evaluation reads of a run (pipelines.pusher.RUN_FILES, written out here).
RUN_FILES = ("config.json", "best_model.keras", "results.json")


def copy_run(run_dir: Path, target: Path) -> Path:
    """A copy of the run files evaluation reads, so a test writes into it and not into a shared run."""
    target.mkdir(parents=True)
    for name in RUN_FILES:
        shutil.copy2(run_dir / name, target / name)
    return target


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (a worker may still lose one to another process)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def build_synthetic_dataset(root: Path, cohort: dict):
    """Builds a synthetic_cohort dataset from a JSON-config dict into root/data, as `tfds build` would.

    The discovery cohort is generated first without a bar (the builder reuses it).

    Returns:
        (the prepared builder, the discovery cohort's BIDS folder).
    """
    from brainage_tf.synthetic import generate_cohort
    from tfds_builders.prepare import DOWNLOADS_FOLDER, make_config
    from tfds_builders.synthetic_cohort.synthetic_cohort_dataset_builder import (
        GENERATED_FOLDER,
        Builder,
        cohort_folder_name,
    )

    config = make_config(Builder, json.dumps(cohort))
    (_, discovery), *_ = config.cohorts()
    bids = root / DOWNLOADS_FOLDER / GENERATED_FOLDER / cohort_folder_name(discovery)
    generate_cohort(bids, discovery, workers=1)
    builder = Builder(config=config, data_dir=str(root / "data"))
    builder.download_and_prepare(download_dir=str(root / DOWNLOADS_FOLDER))
    return builder, bids
