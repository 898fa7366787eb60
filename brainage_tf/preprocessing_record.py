"""The record of how a dataset's volumes were preprocessed, carried from the dataset to its runs and exports.

A TFDS builder writes the record into the prepared dataset's own metadata
(`metadata.json`), training copies it into the run's `config.json`, the export
writes it into `assets/brainage_metadata.json`, and `predict` rebuilds its
`PreprocessConfig` from it. Nothing reads these settings out of a dataset or config
name. Light: no TensorFlow import.

Example:
    >>> record = preprocessing_record(PreprocessConfig(grid="small", registration="affine"))
    >>> record["grid_shape"], record["registration"]
    ([64, 80, 56], 'affine')
    >>> preprocess_config_from_record(record).registration
    'affine'
"""

from __future__ import annotations

from brainage_tf.defaults import STORED_VOLUME_DTYPE
from brainage_tf.errors import PreprocessingRecordError
from brainage_tf.preprocessing import GRIDS, PreprocessConfig, get_grid

# Bump whenever `preprocess_scan`'s output changes for any input: datasets, runs and exports
# recording another version are then refused instead of being fed differently preprocessed scans.
PREPROCESSING_VERSION = 2
# Per-scan zero mean and unit standard deviation inside the template brain mask.
NORMALIZATION = "zscore"
RECORD_KEYS = (
    "version",
    "grid",
    "grid_shape",
    "voxel_size_mm",
    "registration",
    "skull_strip",
    "normalization",
    "stored_dtype",
)


def preprocessing_record(config: PreprocessConfig) -> dict:
    """The JSON-ready record of a preprocessing configuration.

    Args:
        config: What every scan goes through (only its preprocessing settings are recorded).

    Returns:
        A dict with every key of RECORD_KEYS.
    """
    grid = get_grid(config.grid)
    return {
        "version": PREPROCESSING_VERSION,
        "grid": grid.name,
        "grid_shape": [int(size) for size in grid.shape],
        "voxel_size_mm": float(grid.voxel_size_mm),
        "registration": config.registration,
        "skull_strip": config.skull_strip,
        "normalization": NORMALIZATION,
        "stored_dtype": STORED_VOLUME_DTYPE,
    }


# Version 2 changed affine registration only: a version-1 record without it describes the same volumes.
_UNREGISTERED_SAME_AS = {1: 2}


def upgraded_record(record: object) -> object:
    """A record in today's keys and version where its volumes are today's.

    An older record's ``brain_mask`` true/false reads as ``skull_strip`` "template"/"none" (what
    that setting did), and a version-1 record with ``registration`` "none" as version 2 (version 2
    changed the affine registration only), so datasets, runs and exports made before keep working.
    Anything else is returned as it is.
    """
    if not isinstance(record, dict):
        return record
    upgraded = dict(record)
    if "brain_mask" in upgraded and "skull_strip" not in upgraded:
        upgraded["skull_strip"] = "template" if upgraded.pop("brain_mask") else "none"
    if upgraded.get("registration") == "none" and upgraded.get("version") in _UNREGISTERED_SAME_AS:
        upgraded["version"] = _UNREGISTERED_SAME_AS[upgraded["version"]]
    if upgraded == record:
        return record
    return {key: upgraded[key] for key in [*RECORD_KEYS, *upgraded] if key in upgraded}


def check_record(record: object) -> dict:
    """The record in today's keys (`upgraded_record`), once it has every key and this package's version.

    Raises:
        PreprocessingRecordError: None, not a dict, a missing key, or another version.
    """
    if record is None:
        raise PreprocessingRecordError("it has no preprocessing record")
    if not isinstance(record, dict):
        raise PreprocessingRecordError(f"its preprocessing record is not a JSON object: {record!r}")
    record = upgraded_record(record)
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise PreprocessingRecordError(f"its preprocessing record lacks {', '.join(missing)}")
    if record["version"] != PREPROCESSING_VERSION:
        raise PreprocessingRecordError(
            f"its preprocessing version is {record['version']!r}, this package's is {PREPROCESSING_VERSION}"
        )
    return record


def preprocess_config_from_record(record: object) -> PreprocessConfig:
    """The PreprocessConfig that reproduces a record's volumes.

    Raises:
        PreprocessingRecordError: check_record's cases, a grid that is no preset of that shape and
            voxel size, or settings this package cannot reproduce.
    """
    record = check_record(record)
    name, shape = record["grid"], tuple(record["grid_shape"] or ())
    grid = GRIDS.get(name) if isinstance(name, str) else None
    if grid is None or grid.shape != shape or grid.voxel_size_mm != record["voxel_size_mm"]:
        raise PreprocessingRecordError(
            f"its grid {name!r} ({shape}, {record['voxel_size_mm']} mm) is no preset grid "
            f"({', '.join(GRIDS)}), so its scans cannot be preprocessed"
        )
    fixed = {"normalization": NORMALIZATION, "stored_dtype": STORED_VOLUME_DTYPE}
    for key, value in fixed.items():
        if record[key] != value:
            raise PreprocessingRecordError(f"its {key} is {record[key]!r}; this package only makes {value!r}")
    try:
        return PreprocessConfig(
            grid=name, registration=record["registration"], skull_strip=record["skull_strip"]
        )
    except ValueError as error:
        raise PreprocessingRecordError(f"its preprocessing record is unusable: {error}") from None


def record_differences(expected: dict, found: dict) -> list[str]:
    """The keys on which two records differ, as "key expected vs found" (empty when they agree).

    Both are read in today's keys first, so an older ``brain_mask`` record agrees with its mode.
    """
    expected, found = upgraded_record(expected), upgraded_record(found)
    return [
        f"{key} {expected.get(key)!r} vs {found.get(key)!r}"
        for key in RECORD_KEYS
        if expected.get(key) != found.get(key)
    ]
