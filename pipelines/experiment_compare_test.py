"""Tests of pipelines.experiment_compare: paired per-seed differences of two experiments' MAEs."""

import json

import pytest

from brainage_tf.errors import UsageError
from pipelines import experiment_compare


def metrics(seeds, maes_by_model):
    models = {
        model: {"n": [10] * len(seeds), "mae": {"per_seed": maes}} for model, maes in maes_by_model.items()
    }
    table = {
        "title": "Table 2: replication cohort, trained on discovery 0-22 y",
        "settings": {"0-22": {"models": models}},
    }
    return {"seeds": seeds, "tables": {"table2": table}}


def test_rows_pair_the_seeds_and_keep_models_of_both_only():
    none = metrics([0, 1], {"resnet3d": [1.0, 2.0], "slice_lstm": [0.9, 0.8]})
    stripped = metrics([0, 1], {"resnet3d": [0.5, 2.5]})
    rows = experiment_compare.compare(none, stripped)
    assert [(row["table"], row["setting"], row["model"]) for row in rows] == [("Table 2", "0-22", "resnet3d")]
    assert rows[0]["differences"] == [-0.5, 0.5]
    table = experiment_compare.markdown(rows, ("none", "deepbet")).splitlines()
    assert table[0] == (
        "| table | trained on | model | MAE none (y) | MAE deepbet (y) | deepbet - none, mean (per seed) |"
    )
    assert table[2] == "| Table 2 | 0-22 | resnet3d | 1.50 ± 0.71 | 1.50 ± 1.41 | +0.00 (-0.50, +0.50) |"


def test_other_seeds_and_an_unfinished_folder_are_refused(tmp_path, capsys):
    with pytest.raises(UsageError, match=r"different seeds: \[0, 1\] and \[0\]"):
        experiment_compare.compare(metrics([0, 1], {}), metrics([0], {}))
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "metrics.json").write_text(json.dumps(metrics([0], {"resnet3d": [1.25]})))
    assert experiment_compare.main([str(tmp_path / "done"), str(tmp_path / "running")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{tmp_path / 'running'} has no metrics.json" in error
    assert experiment_compare.main([str(tmp_path / "done"), str(tmp_path / "done"), "--names", "a", "b"]) == 0
    assert "| Table 2 | 0-22 | resnet3d | 1.25 | 1.25 | +0.00 (+0.00) |" in capsys.readouterr().out
