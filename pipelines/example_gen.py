"""ExampleGen's work: build a TFDS dataset through the package's Beam builders.

The output is a TFDS data dir in the store holding one prepared dataset; its
artifact metadata names the dataset (`dataset`, as `brainage_tf.data` reads it),
its splits and the ingest summary. Beam pipeline options say how to build, not
what, so they are not part of the fingerprint: the same dataset built on another
runner is reused.
"""

from __future__ import annotations

import os
from pathlib import Path

from brainage_tf.errors import BuildError, ComponentError, IngestSummaryError
from pipelines.store import OutputStore, StoredOutput, fingerprint_of

COMPONENT = "ExampleGen"


def manual_dir_fingerprint(manual_dir: str) -> str:
    """Fingerprint of a cohort folder from its file list, sizes and modification times.

    Hashing every scan of a real cohort would cost more than many builds; a file that
    is added, removed, resized or rewritten still changes this fingerprint.
    """
    if not manual_dir:
        return ""
    root = Path(manual_dir)
    if not root.is_dir():
        raise ComponentError(f"{manual_dir}: manual dir is not a folder.")
    listing = []
    for folder, _, names in sorted(os.walk(root)):
        for name in sorted(names):
            stat = (Path(folder) / name).stat()
            listing.append(
                [(Path(folder) / name).relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns]
            )
    return fingerprint_of(listing)


def run(
    store_dir: str,
    builder: str,
    config: str,
    manual_dir: str = "",
    beam_pipeline_options: str = "",
) -> StoredOutput:
    """Builds (or reuses) one config of a cohort builder in the store.

    Args:
        store_dir: The output store.
        builder: "synthetic_cohort", "nihpd" or "mghbch".
        config: Config name or JSON config (see tfds_builders.prepare.prepare_dataset).
        manual_dir: The user's cohort folder ("" for the synthetic cohort).
        beam_pipeline_options: `tfds build --beam_pipeline_options` text, passed on unchanged.

    Returns:
        The `examples` output: the TFDS data dir and its metadata.

    Raises:
        ComponentError: Unknown builder or config, unreadable options, or a failed build.
    """
    store = OutputStore(store_dir)
    parameters = {"builder": builder, "config": config, "manual_dir": manual_dir}

    def build(folder: Path) -> dict:
        from tfds_builders.prepare import DOWNLOADS_FOLDER, prepare_dataset

        print(f"{COMPONENT}: building {builder} config {config} into {folder}")
        try:
            prepared = prepare_dataset(
                builder,
                config,
                str(folder),
                # Shared by every build: the synthetic cohorts' generated scans are reused by name.
                download_dir=str(store.root / DOWNLOADS_FOLDER),
                manual_dir=manual_dir or None,
                beam_pipeline_options=beam_pipeline_options,
            )
        except (BuildError, IngestSummaryError) as error:
            raise ComponentError(str(error)) from None
        print(f"{COMPONENT}: {prepared.name}: {prepared.summary.line()}")
        details = {
            "dataset": prepared.name,
            "splits": prepared.splits,
            "ingest_summary": prepared.summary.to_json(),
            "prepared_folder": prepared.path.relative_to(folder).as_posix(),
        }
        return {"examples": (".", details)}

    inputs = {"manual_dir": manual_dir_fingerprint(manual_dir)}
    return store.run_or_reuse(COMPONENT, parameters, inputs, build)["examples"]
