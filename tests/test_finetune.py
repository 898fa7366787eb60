"""`python -m brainage_tf.train --init-from`: the parent's exact weights, refusals in one line, the lineage.

The parent is the session's served model (tests/conftest.py): a 1-epoch slice_lstm on a
tiny synthetic cohort, its run directory and its export. The frozen encoder and resume are
tested on in-memory models in brainage_tf/training/init_from_test.py.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from cli_checks import assert_one_line_usage_errors
from toy_data import store_toy_tfds, toy_cohort, toy_record

from brainage_tf import data, train
from brainage_tf.errors import DatasetError
from brainage_tf.serving.metadata import METADATA_ASSET
from brainage_tf.training import flags
from brainage_tf.training.config import TrainConfig
from brainage_tf.training.trainer import Trainer

# The served model's batch (its 10 training subjects are fewer than the finetune preset's 8 x 2).
FINETUNE_FLAGS = ["--epochs", "1", "--batch-size", "4", "--strategy", "one_device"]


def dataset_flags(served_model, *more: str) -> list[str]:
    return ["--dataset", served_model["dataset"], "--data_dir", str(served_model["data_dir"]), *more]


def test_a_run_and_its_export_both_start_the_child_at_the_parents_exact_weights(
    served_model, tmp_path, monkeypatch
):
    parent = keras.models.load_model(served_model["run"] / "best_model.keras").get_weights()
    before_first_step = {}
    step = Trainer.train_step

    def recording_step(self, batch):
        before_first_step.setdefault(self.run.path.name, self.model.get_weights())
        return step(self, batch)

    monkeypatch.setattr(Trainer, "train_step", recording_step)
    origins = {"from_run": served_model["run"], "from_export": served_model["model"]}
    for name, origin in origins.items():
        export = "--export" if name == "from_export" else "--no-export"
        argv = dataset_flags(served_model, "--init-from", str(origin), "--freeze", "encoder", export)
        assert train.main([*argv, *FINETUNE_FLAGS, "--out", str(tmp_path / name)]) == 0
    for name, origin in origins.items():
        weights = before_first_step[name]
        assert len(weights) == len(parent) > 10
        assert all(np.array_equal(mine, theirs) for mine, theirs in zip(weights, parent, strict=True)), name
        config = json.loads((tmp_path / name / "config.json").read_text())
        lineage = {
            "path": str(origin.absolute()),
            "fingerprint": config["init_fingerprint"],
            "freeze": "encoder",
        }
        assert config["init_from"] == lineage["path"] and config["preset"] == "finetune"
        assert json.loads((tmp_path / name / "results.json").read_text())["parent"] == lineage
    fingerprints = {
        json.loads((tmp_path / name / "config.json").read_text())["init_fingerprint"] for name in origins
    }
    assert len(fingerprints) == 1 and fingerprints.pop().startswith("sha256:")  # the same weights, either way
    asset = json.loads((tmp_path / "from_export" / "export" / "1" / "assets" / METADATA_ASSET).read_text())
    assert (
        asset["parent"]["path"] == str(served_model["model"].absolute())
        and asset["parent"]["freeze"] == "encoder"
    )


def test_the_architecture_comes_from_the_parent_and_a_flag_that_contradicts_it_is_refused(
    served_model, tmp_path, capsys
):
    run = served_model["run"]
    args = flags.build_parser().parse_args(
        ["--init-from", str(run), "--model", "slice_lstm", "--pool-size", "2"]
    )
    config = flags.config_from_args(
        args
    )  # flags equal to the parent's are welcome (the pipelines pass --model)
    assert (config.width_multiplier, config.slice_size, config.pool_size) == (0.125, (40, 40), 2)
    assert (config.preset, config.learning_rate) == ("finetune", TrainConfig.finetune().learning_rate)
    parent = f"({run.absolute()}): a fine-tuned model keeps its parent's architecture"
    from_run = ["--init-from", str(run)]
    cases = {
        f"--model resnet3d contradicts the parent's slice_lstm {parent}": [*from_run, "--model", "resnet3d"],
        f"--width-multiplier 0.25 contradicts the parent's 0.125 {parent}": [
            *from_run,
            "--width-multiplier",
            "0.25",
        ],
        f"--slice-axis coronal contradicts the parent's axial {parent}": [
            *from_run,
            "--slice-axis",
            "coronal",
        ],
        f"--slice-size 50 50 contradicts the parent's 40 40 {parent}": [
            *from_run,
            "--slice-size",
            "50",
            "50",
        ],
        f"--pool-size 3 contradicts the parent's 2 {parent}": [*from_run, "--pool-size", "3"],
        f"--init-from {run / 'export'}: neither a run directory (config.json) nor an export version folder "
        f"(saved_model.pb); pass one version, e.g. {run / 'export' / '1'}.": [
            "--init-from",
            str(run / "export"),
        ],
        "--freeze encoder needs --init-from: it adapts a trained model": ["--freeze", "encoder"],
    }
    tail = dataset_flags(served_model, "--out", str(tmp_path / "run"))
    assert_one_line_usage_errors(train.main, cases, tail, capsys)
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def site(tmp_path_factory, served_model) -> dict:
    """A longitudinal toy site on the served grid, registered affinely: 12 subjects of 2 visits each."""
    data_dir = tmp_path_factory.mktemp("site")
    shape = tuple(next(iter(served_model["stored"]["train"].values())).shape)
    volumes, ages, _ = toy_cohort(24, shape, min_age=1.0, max_age=6.0)
    subjects = np.array([f"sub-{index // 2:02d}" for index in range(24)])
    record = {**toy_record(shape), "registration": "affine"}
    store_toy_tfds(data_dir, "toy_site", shape, {"train": (volumes, ages, subjects)}, record=record)
    return {"data_dir": str(data_dir), "dataset": "toy_site/tiny"}


def test_a_site_preprocessed_otherwise_than_the_parent_is_refused_in_one_line(
    served_model, site, tmp_path, capsys
):
    argv = ["--dataset", site["dataset"], "--data_dir", site["data_dir"], *FINETUNE_FLAGS]
    assert train.main([*argv, "--init-from", str(served_model["run"]), "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert (
        len(error.strip().splitlines()) == 1
        and (
            f"toy_site/tiny:train was preprocessed otherwise than the training data of the parent "
            f"{served_model['run'].absolute()} (parent vs dataset: registration 'none' vs 'affine')"
        )
        in error
    )
    assert not (tmp_path / "run").exists()


def test_a_split_slice_divides_subjects_never_a_subjects_scans(served_model, site):
    halves = [
        data.tfds_source(served_model["dataset"], split, str(served_model["data_dir"]))
        for split in ("train[:50%]", "train[50%:]")
    ]
    subjects = [set(data.read_labels(half).subject_ids) for half in halves]
    whole = set(
        data.read_labels(
            data.tfds_source(served_model["dataset"], "train", str(served_model["data_dir"]))
        ).subject_ids
    )
    assert (
        subjects[0]
        and subjects[1]
        and subjects[0].isdisjoint(subjects[1])
        and subjects[0] | subjects[1] == whole
    )
    with pytest.raises(
        DatasetError, match=r"^toy_site/tiny: split 'train\[:50%\]' cuts the scans of \d+ subjects apart"
    ):
        data.tfds_source(site["dataset"], "train[:50%]", site["data_dir"])
    with pytest.raises(DatasetError, match=r"has no split 'tain'; it has \['train'\]\.$"):
        data.tfds_source(site["dataset"], "tain[:50%]", site["data_dir"])
