"""`python -m pipelines.site_adaptation --size tiny`: the learning curve end to end on a toy site."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest
from toy_data import store_toy_tfds, toy_cohort

from pipelines import site_adaptation, site_report

# resnet3d needs 33 voxels along one axis; slice_lstm (the default) takes this toy grid.
SHAPE = (36, 20, 14)


@pytest.fixture(scope="module")
def toy_site(tmp_path_factory):
    """`toy_site/tiny`: 40 discovery subjects 0-22 y, a 32-subject site 0-6 y drawn otherwise."""
    data_dir = tmp_path_factory.mktemp("site") / "tfds"
    train = toy_cohort(40, SHAPE, seed=1)
    # Its ellipsoid grows over 0-6 y as the discovery's over 0-22 y: a site whose images differ.
    volumes, ages, _ = toy_cohort(32, SHAPE, max_age=6.0, seed=5)
    site = (volumes, ages, np.array([f"site-{index:02d}" for index in range(32)]))
    store_toy_tfds(data_dir, "toy_site", SHAPE, {"train": train, "replication": site})
    return data_dir, site


@pytest.mark.slow
def test_tiny_learning_curve_scores_five_methods_on_held_out_site_subjects(toy_site, tmp_path, monkeypatch):
    data_dir, (volumes, ages, subject_ids) = toy_site
    volumes = volumes.astype(np.float16).astype(np.float32)[..., None]  # as stored
    tiny = site_adaptation.SIZES["tiny"]
    monkeypatch.setitem(
        site_adaptation.SIZES, "tiny", site_adaptation.Size("toy_site/tiny", None, (5, 10), tiny.changes)
    )
    out = tmp_path / "curve"
    flags = ["--out", str(out), "--size", "tiny", "--seeds", "1", "--seed", "3", "--data-dir", str(data_dir)]
    assert site_adaptation.main(flags) == 0

    summary = json.loads((out / site_report.SUMMARY_NAME).read_text())
    rows = {(row["method"], row["n_train"]): row for row in summary["rows"]}
    draw = json.loads((out / "runs" / "seed3" / "subjects.json").read_text())
    held_out, pool = draw["held_out"], draw["pool"]
    assert len(held_out) == 22 and len(pool) == 10 and set(held_out).isdisjoint(pool)
    held = np.isin(subject_ids, held_out)

    # No adaptation: the parent's own predictions of the held-out subjects, computed here.
    parent = keras.models.load_model(out / "runs" / "seed3" / "parent" / "best_model.keras")
    predicted = parent.predict(volumes, verbose=0)[:, 0].astype(float)
    mae = np.mean(np.abs(predicted[held] - ages[held]))
    for size in (5, 10):
        assert rows["none", size]["mae"] == pytest.approx(mae, abs=1e-4)
        assert rows["none", size]["n"] == 22

    # Recalibration needs 9 control subjects at 90 %: none at N = 5; at N = 10 the line fitted on
    # the first 10 drawn subjects, inverted (Cole et al. 2018), and a finite interval.
    assert ("recalibration", 5) not in rows
    controls = np.isin(subject_ids, pool[:10])
    slope, intercept = np.polyfit(ages[controls], predicted[controls], 1)
    served = (predicted[held] - intercept) / slope
    assert rows["recalibration", 10]["mae"] == pytest.approx(np.mean(np.abs(served - ages[held])), abs=1e-3)
    assert 0.0 <= rows["recalibration", 10]["coverage"] <= 1.0 and rows["recalibration", 10]["half_width"] > 0

    # The trained methods: on exactly the first N drawn subjects, from the parent or from scratch.
    for size in (5, 10):
        for method, parent_path, freeze in (
            ("finetune_encoder", out.resolve() / "runs" / "seed3" / "parent", "encoder"),
            ("finetune_all", out.resolve() / "runs" / "seed3" / "parent", "none"),
            ("scratch", None, "none"),
        ):
            run = out / "runs" / "seed3" / f"n{size}" / method
            config = json.loads((run / "config.json").read_text())
            assert sorted(config["train_subjects"]) == sorted(pool[:size]), (method, size)
            assert (config["init_from"], config["freeze"], config["seed"]) == (
                None if parent_path is None else str(parent_path),
                freeze,
                3,
            )
            assert rows[method, size]["coverage"] is None
    # One child scored here too (each load costs seconds): its own predictions of the held-out subjects.
    child = keras.models.load_model(out / "runs" / "seed3" / "n10" / "finetune_all" / "best_model.keras")
    tuned = child.predict(volumes[held], verbose=0)[:, 0]
    assert rows["finetune_all", 10]["mae"] == pytest.approx(np.mean(np.abs(tuned - ages[held])), abs=1e-4)

    report = (out / site_report.REPORT_NAME).read_text()
    assert "| method | N = 5 | N = 10 |" in report
    recalibrated = f"{rows['recalibration', 10]['mae']:.2f}"
    assert f"| recalibration only (calibrate) | – | {recalibrated} |" in report
    assert (out / site_report.PLOT_NAME).stat().st_size > 10_000
    assert math.isfinite(summary["mae"]["scratch"][1]["mean"])

    # A rerun with the same flags reuses every seed; other flags are refused in one line.
    before = (out / site_report.SUMMARY_NAME).read_text()
    assert site_adaptation.main(flags) == 0
    assert json.loads((out / site_report.SUMMARY_NAME).read_text())["rows"] == json.loads(before)["rows"]
    assert site_adaptation.main([*flags[:-2], "--data-dir", str(data_dir), "--sizes", "5"]) == 2


def test_a_site_too_small_for_the_largest_n_is_one_line_before_any_training(
    toy_site, tmp_path, monkeypatch, capsys
):
    data_dir, _ = toy_site
    tiny = site_adaptation.SIZES["tiny"]
    monkeypatch.setitem(
        site_adaptation.SIZES, "tiny", site_adaptation.Size("toy_site/tiny", None, (5, 10), tiny.changes)
    )
    out = tmp_path / "curve"
    flags = [
        "--out",
        str(out),
        "--size",
        "tiny",
        "--seeds",
        "1",
        "--sizes",
        "20",
        "--data-dir",
        str(data_dir),
    ]
    assert site_adaptation.main(flags) == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1, error
    assert (
        "toy_site/tiny:replication: the site has 32 subjects; N up to 20 needs at least 40 (20 held out)"
        in error
    )
    assert not (out / "runs" / "seed0" / "parent").exists()
