"""What an export says about itself: the metadata asset, a fingerprint of its files, its version folder.

Light: no TensorFlow, so a command can check an export, or refuse a resume with
another one, before paying TensorFlow's import.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from brainage_tf.errors import UsageError

# The one name of the asset that carries the export's preprocessing settings and calibration.
METADATA_ASSET = "brainage_metadata.json"
# Files are hashed in blocks of this many bytes, so a large variables file is never held whole.
_HASH_BLOCK_BYTES = 1 << 20


def read_metadata(export_dir: str | os.PathLike) -> dict:
    """The metadata asset of an export version folder.

    Raises:
        UsageError: Not a SavedModel folder, or its metadata is missing or unreadable.
    """
    export_dir = Path(export_dir)
    if not (export_dir / "saved_model.pb").is_file():
        raise UsageError(f"{export_dir}: not a SavedModel export (no saved_model.pb)")
    asset = export_dir / "assets" / METADATA_ASSET
    try:
        metadata = json.loads(asset.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UsageError(f"{asset}: unreadable export metadata ({' '.join(str(error).split())})") from None
    if not isinstance(metadata, dict):
        raise UsageError(f"{asset}: export metadata is not a JSON object")
    return metadata


def export_fingerprint(export_dir: str | os.PathLike) -> str:
    """A SHA-256 over every file of an export (relative path, size and content), as "sha256:<hex>".

    It covers the graph and the variables, and also the metadata asset, whose
    out-of-distribution ranges predict reads and TensorFlow's own fingerprint.pb
    does not cover. A copy of an export elsewhere has the same fingerprint.
    """
    export_dir = Path(export_dir)
    digest = hashlib.sha256()
    for path in sorted(p for p in export_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(export_dir).as_posix()
        digest.update(f"{relative}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(_HASH_BLOCK_BYTES), b""):
                digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def version_folders(model_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """(version, folder) of every version of a TF Serving model folder, oldest first.

    TF Serving serves the sub-folders named by a whole number; anything else there (a
    staging folder, a note) is not a version.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    found = [
        (int(p.name), p) for p in model_dir.iterdir() if p.name.isascii() and p.name.isdigit() and p.is_dir()
    ]
    return sorted(found)


def next_version(model_dir: str | os.PathLike) -> int:
    """1 + the largest version of a TF Serving model folder (1 when it has none)."""
    return max((version for version, _ in version_folders(model_dir)), default=0) + 1
