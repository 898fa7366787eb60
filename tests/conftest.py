"""Fixtures shared by the test modules of tests/ (not shipped with the package)."""

from __future__ import annotations

import numpy as np
import pytest
from cli_checks import build_synthetic_dataset
from toy_data import TINY_RUN_FLAGS

# 12 children on the tiny grid, coarsely generated so the build takes seconds; 2 go to test.
SERVED_COHORT = dict(name="tiny_served", grid="tiny", registration="none", discovery_subjects=12,
                     replication_subjects=1, voxel_scale=3.9, generator_workers=1)  # fmt: skip
SERVED_DATASET = f"synthetic_cohort/{SERVED_COHORT['name']}"


@pytest.fixture(scope="session")
def served_model(tmp_path_factory) -> dict:
    """A 1-epoch slice_lstm trained on a tiny synthetic cohort, exported: the model predict and explain run.

    Trained on scans like those the tests feed it, so its answer moves with the tensor it is
    given; a model of toy ellipsoids answers brain scans with nearly one age, whatever it is fed.

    Returns:
        root; dataset (its TFDS name); data_dir; bids (the discovery BIDS folder) and spec (its
        `CohortSpec`, whose `plan_visits` gives the ground truth it was generated with); stored:
        split -> {scan path -> stored float16 volume} for train and test; ages: scan path -> age;
        run (the run directory: copy it with `cli_checks.copy_run` before writing into it);
        model (the export).
    """
    import tensorflow_datasets as tfds

    from brainage_tf import train

    root = tmp_path_factory.mktemp("served")
    builder, bids = build_synthetic_dataset(root, SERVED_COHORT)
    stored: dict[str, dict[str, np.ndarray]] = {}
    ages: dict[str, float] = {}
    for split in ("train", "test"):
        for example in tfds.as_numpy(builder.as_dataset(split=split)):
            path = str(bids / example["source_path"].decode())
            stored.setdefault(split, {})[path] = example["volume"]
            ages[path] = float(example["age"])
    run_dir = root / "run"
    flags = ["--dataset", SERVED_DATASET, "--data_dir", str(root / "data"), "--out", str(run_dir)]
    assert train.main([*flags, *TINY_RUN_FLAGS, "--epochs", "1", "--export"]) == 0
    (_, spec), _ = builder.builder_config.cohorts()
    return dict(root=root, dataset=SERVED_DATASET, data_dir=root / "data", bids=bids, spec=spec,
                stored=stored, ages=ages, run=run_dir, model=run_dir / "export" / "1")  # fmt: skip
