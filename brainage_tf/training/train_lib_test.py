"""train's refusals come before any work: a resume keeps its run's config, a new run a fresh folder."""

from pathlib import Path

import pytest

from brainage_tf.errors import UsageError
from brainage_tf.training.config import TrainConfig
from brainage_tf.training.run_directory import RunDirectory
from brainage_tf.training.train_lib import resumed_config, train


def recorded_run(folder: Path) -> TrainConfig:
    config = TrainConfig.demo().replace(dataset="toy_cohort/tiny", data_dir=str(folder / "tfds"))
    RunDirectory(folder / "run").start(config, resume=False)
    return config


def test_a_resume_may_change_epochs_only(tmp_path):
    recorded = recorded_run(tmp_path)
    assert resumed_config(tmp_path / "run", epochs=7) == recorded.replace(epochs=7)
    refusal = r"config.json; it differs in model, seed \(only epochs may change\)\.$"
    with pytest.raises(UsageError, match=refusal):
        train(recorded.replace(model="resnet3d", seed=3), tmp_path / "run", resume=True)


def test_a_new_run_refuses_a_folder_with_files_and_a_resume_one_without_a_config(tmp_path):
    recorded = recorded_run(tmp_path)
    with pytest.raises(UsageError, match="exists and is not empty; choose another --out or pass --resume"):
        train(recorded, tmp_path / "run")
    with pytest.raises(UsageError, match="has no config.json: not a run directory"):
        resumed_config(tmp_path / "elsewhere")
