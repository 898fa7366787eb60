"""`prepare_dataset`: `tfds build` as a function, with its configs, manual dir and Beam options."""

import json

import pytest
import tensorflow_datasets as tfds

from brainage_tf.errors import BuildError
from tfds_builders.prepare import DOWNLOADS_FOLDER, parse_beam_options, prepare_dataset


class Stop(Exception):
    """Raised by the stand-in of download_and_prepare once it has seen its arguments."""


@pytest.fixture
def seen(monkeypatch):
    """Records what download_and_prepare is called with, instead of building."""
    calls = []

    def record(builder, download_dir=None, download_config=None):
        calls.append((builder, download_dir, download_config))
        raise Stop

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", record)
    return calls


def test_beam_options_reach_the_builder_as_tfds_build_passes_them(tmp_path, seen):
    options = "runner=FlinkRunner,flink_master=host:8081,environment_type=LOOPBACK"
    with pytest.raises(Stop):
        prepare_dataset("synthetic_cohort", "tiny", str(tmp_path), beam_pipeline_options=options)
    ((builder, download_dir, config),) = seen
    assert config.beam_options.get_all_options()["runner"] == "FlinkRunner"
    assert config.beam_options.get_all_options()["flink_master"] == "host:8081"
    assert builder.builder_config.name == "tiny" and download_dir == str(tmp_path / DOWNLOADS_FOLDER)
    assert parse_beam_options(" a=1, ,b=2") == ["--a=1", "--b=2"]


def test_a_json_config_builds_a_config_of_the_builders_own_class(tmp_path, seen):
    config = {"name": "tiny_6", "grid": "tiny", "registration": "none", "discovery_subjects": 6}
    with pytest.raises(Stop):
        prepare_dataset("synthetic_cohort", json.dumps(config), str(tmp_path))
    ((builder, _, _),) = seen
    assert (builder.builder_config.name, builder.builder_config.discovery_subjects) == ("tiny_6", 6)


def test_a_json_config_sets_the_voxel_limit_of_its_scans(tmp_path, seen):
    config = '{"name": "mysite", "grid": "paper", "registration": "affine", "max_voxels": 400000000}'
    with pytest.raises(Stop):
        prepare_dataset("nihpd", config, str(tmp_path / "data"), manual_dir=str(tmp_path))
    ((builder, _, _),) = seen
    preprocess = builder.builder_config.preprocess_config
    assert (preprocess.grid, preprocess.registration, preprocess.max_voxels) == ("paper", "affine", 400000000)


@pytest.mark.parametrize(
    "builder, config, manual_dir, message",
    [
        ("oasis", "tiny", None, "unknown builder 'oasis'; choose one of synthetic_cohort, nihpd, mghbch"),
        (
            "synthetic_cohort",
            "huge",
            None,
            "synthetic_cohort has no config 'huge'; it has tiny, small, paper",
        ),
        ("synthetic_cohort", '{"name": "x", "grid": "tiny"', None, "unusable JSON config"),
        ("synthetic_cohort", '{"name": "x", "grid": "tiny", "colour": 1}', None, "unusable JSON config"),
        (
            "synthetic_cohort",
            '{"name": "x", "grid": "tiny", "registration": "none", "max_voxels": 0}',
            None,
            "max_voxels must be a positive whole number, got 0",
        ),
        ("nihpd", "small", None, "nihpd needs a manual dir"),
    ],
)
def test_bad_requests_fail_before_any_build_with_one_line(
    tmp_path, seen, builder, config, manual_dir, message
):
    with pytest.raises(BuildError) as error:
        prepare_dataset(builder, config, str(tmp_path), manual_dir=manual_dir)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert seen == []
