"""The preprocessing record: made from a PreprocessConfig, turned back into one, refused when unusable."""

import json

import pytest

from brainage_tf.defaults import STORED_VOLUME_DTYPE
from brainage_tf.errors import PreprocessingRecordError
from brainage_tf.preprocessing import (
    GRID_NAMES,
    GRIDS,
    REGISTRATION_MODES,
    SKULL_STRIP_MODES,
    PreprocessConfig,
)
from brainage_tf.preprocessing_record import (
    PREPROCESSING_VERSION,
    RECORD_KEYS,
    check_record,
    preprocess_config_from_record,
    preprocessing_record,
    record_differences,
)


@pytest.mark.parametrize("skull_strip", SKULL_STRIP_MODES)
@pytest.mark.parametrize("registration", REGISTRATION_MODES)
@pytest.mark.parametrize("grid", GRID_NAMES)
def test_the_record_round_trips_through_json(grid, registration, skull_strip):
    config = PreprocessConfig(grid=grid, registration=registration, skull_strip=skull_strip)
    record = json.loads(json.dumps(preprocessing_record(config)))
    assert tuple(record) == RECORD_KEYS
    assert record["version"] == PREPROCESSING_VERSION and record["stored_dtype"] == STORED_VOLUME_DTYPE
    assert record["grid_shape"] == list(GRIDS[grid].shape)
    assert record["voxel_size_mm"] == GRIDS[grid].voxel_size_mm
    assert record["normalization"] == "zscore" and record["skull_strip"] == skull_strip
    assert preprocess_config_from_record(record) == config


@pytest.mark.parametrize("brain_mask, mode", [(True, "template"), (False, "none")])
def test_an_older_records_brain_mask_reads_as_its_skull_stripping_mode(brain_mask, mode):
    """Datasets, runs and exports written before the modes recorded `brain_mask`: they keep working."""
    today = preprocessing_record(PreprocessConfig(grid="small", registration="affine", skull_strip=mode))
    older = {key: value for key, value in today.items() if key != "skull_strip"}
    older = {**older, "brain_mask": brain_mask}
    assert check_record(older) == today
    assert preprocess_config_from_record(older).skull_strip == mode
    assert record_differences(today, older) == record_differences(older, today) == []
    other = "none" if mode == "template" else "template"
    assert record_differences(older, {**today, "skull_strip": other}) == [
        f"skull_strip {mode!r} vs {other!r}"
    ]


def test_a_missing_record_key_or_another_version_is_refused():
    record = preprocessing_record(PreprocessConfig(grid="small", registration="affine"))
    with pytest.raises(PreprocessingRecordError, match="^it has no preprocessing record$"):
        preprocess_config_from_record(None)
    with pytest.raises(PreprocessingRecordError, match="not a JSON object"):
        check_record(["small"])
    for key in ("registration", "version", "grid"):
        incomplete = {name: value for name, value in record.items() if name != key}
        with pytest.raises(PreprocessingRecordError, match=f"lacks {key}$"):
            preprocess_config_from_record(incomplete)
    newer = PREPROCESSING_VERSION + 1
    expected = f"preprocessing version is {newer}, this package's is {PREPROCESSING_VERSION}$"
    with pytest.raises(PreprocessingRecordError, match=expected):
        preprocess_config_from_record({**record, "version": newer})


def test_a_version_1_record_reads_as_today_without_registration_only():
    """Version 2 changed the affine registration: unregistered version-1 datasets keep working."""
    unregistered = preprocessing_record(PreprocessConfig(grid="small", registration="none"))
    assert check_record({**unregistered, "version": 1}) == unregistered
    registered = preprocessing_record(PreprocessConfig(grid="small", registration="affine"))
    with pytest.raises(PreprocessingRecordError, match="preprocessing version is 1, this package's is 2$"):
        check_record({**registered, "version": 1})


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"grid": None, "grid_shape": [16, 20, 14], "voxel_size_mm": None}, "no preset grid"),
        ({"grid": "small", "grid_shape": [24, 30, 21]}, "no preset grid"),
        ({"voxel_size_mm": 2.0}, "no preset grid"),
        ({"registration": "rigid"}, "registration must be one of"),
        ({"skull_strip": "bet"}, "skull_strip must be one of"),
        ({"normalization": "minmax"}, "normalization is 'minmax'"),
        ({"stored_dtype": "float32"}, "stored_dtype is 'float32'"),
    ],
)
def test_a_record_this_package_cannot_reproduce_is_refused(changes, message):
    record = {**preprocessing_record(PreprocessConfig(grid="small")), **changes}
    with pytest.raises(PreprocessingRecordError, match=message):
        preprocess_config_from_record(record)


def test_differences_name_the_keys_that_differ():
    run = preprocessing_record(PreprocessConfig(grid="tiny", registration="affine"))
    assert record_differences(run, dict(run)) == []
    other = preprocessing_record(PreprocessConfig(grid="tiny", registration="none"))
    assert record_differences(run, other) == ["registration 'affine' vs 'none'"]
    assert record_differences(run, {**run, "version": 0}) == [f"version {PREPROCESSING_VERSION} vs 0"]
