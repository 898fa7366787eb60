"""Which supported layout a cohort folder holds, and reading it (see docs/ingest.md)."""

from __future__ import annotations

import os
from pathlib import Path

from brainage_tf.errors import CohortLayoutError
from brainage_tf.ingest.bids import BIDS_MARKERS, read_bids
from brainage_tf.ingest.manifest import MANIFEST_NAMES, read_manifest
from brainage_tf.ingest.records import ScanRecord
from brainage_tf.ingest.release import DEMOGRAPHICS_NAMES, read_release


def detect_layout(root: str | os.PathLike) -> tuple[str, Path]:
    """Finds which supported layout a folder holds.

    Args:
      root: The cohort folder (e.g. the TFDS manual_dir).

    Returns:
      (layout name, the file that identifies it): "manifest" with the manifest,
      "bids" with participants.tsv, "release" with the demographics table.

    Raises:
      CohortLayoutError: No layout found, or more than one.
    """
    root = Path(root)
    if not root.is_dir():
        raise CohortLayoutError(f"{root}: cohort folder does not exist")
    found = [("manifest", root / name) for name in MANIFEST_NAMES if (root / name).exists()]
    if any((root / name).exists() for name in BIDS_MARKERS):
        found.append(("bids", root / "participants.tsv"))
    found += [("release", root / name) for name in DEMOGRAPHICS_NAMES if (root / name).exists()]
    if len(found) == 1:
        return found[0]
    if not found:
        looked_for = (
            f"{' or '.join(MANIFEST_NAMES)} (manifest), {' / '.join(BIDS_MARKERS)} (BIDS), "
            f"{' or '.join(DEMOGRAPHICS_NAMES)} (release: scans + demographics table)"
        )
        raise CohortLayoutError(f"{root}: no cohort layout found; looked for {looked_for}")
    names = ", ".join(path.name for _, path in found)
    raise CohortLayoutError(f"{root}: several cohort layouts found ({names}); keep exactly one")


def read_cohort(root: str | os.PathLike, cohort: str = "") -> list[ScanRecord]:
    """Reads whichever supported layout `root` holds.

    Args:
      root: The cohort folder.
      cohort: Cohort name stored in every record.

    Returns:
      The cohort's records.

    Raises:
      CohortLayoutError: See `detect_layout` and the readers.
    """
    layout, marker = detect_layout(root)
    if layout == "manifest":
        return read_manifest(marker, cohort=cohort)
    if layout == "bids":
        return read_bids(root, cohort=cohort)
    return read_release(marker, cohort=cohort)
