"""A learnable toy cohort held in memory, for the training tests (not shipped with the package).

Each volume holds a bright ellipsoid whose size grows with age, plus noise, and is
normalised per subject (zero mean, unit variance) like preprocessed scans. The
age can be read off the volume, so a model trained on it must beat the
training-mean predictor. It is not a brain: the synthetic_cohort TFDS dataset is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brainage_tf.defaults import MAX_AGE_YEARS, MIN_AGE_YEARS
from brainage_tf.preprocessing import GRIDS, PreprocessConfig
from brainage_tf.preprocessing_record import preprocessing_record

# `python -m brainage_tf.train` flags for a run of seconds: 2 epochs of an eighth-width ResNet18.
TINY_RUN_FLAGS = "--epochs 2 --batch-size 4 --width-multiplier 0.125 --slice-size 40 40 --pool-size 2".split()
TINY_RUN_FLAGS += ["--strategy", "one_device", "--no-export"]  # tests that need the export ask for it
# The version folder of toy datasets: the cohort builders' VERSION, so their folders look alike.
TOY_VERSION = "1.1.0"


def toy_cohort(
    num_subjects: int,
    volume_shape: tuple[int, int, int] = (16, 20, 14),
    min_age: float = MIN_AGE_YEARS,
    max_age: float = MAX_AGE_YEARS,
    seed: int = 0,
    noise: float = 0.3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generates toy volumes whose ellipsoid radius is a linear function of age.

    Args:
        num_subjects: Number of subjects (one volume each).
        volume_shape: Spatial shape (x, y, z).
        min_age: Smallest age drawn (years).
        max_age: Largest age drawn (years).
        seed: Random seed.
        noise: Standard deviation of the Gaussian noise before normalisation.

    Returns:
        (volumes float32 (n, x, y, z), ages float32 (n,), subject_ids str (n,) like "sub-0007").
    """
    rng = np.random.default_rng(seed)
    ages = rng.uniform(min_age, max_age, num_subjects).astype(np.float32)
    grids = np.meshgrid(*[np.linspace(-1.0, 1.0, size) for size in volume_shape], indexing="ij")
    radius2 = sum(axis**2 for axis in grids)
    volumes = np.empty((num_subjects, *volume_shape), np.float32)
    for index, age in enumerate(ages):
        radius = 0.3 + 0.6 * (age - min_age) / max(max_age - min_age, 1e-6)
        volume = (radius2 <= radius**2).astype(np.float32)
        volume += rng.normal(0.0, noise, volume_shape).astype(np.float32)
        volumes[index] = (volume - volume.mean()) / volume.std()
    subject_ids = np.array([f"sub-{index:04d}" for index in range(num_subjects)])
    return volumes, ages, subject_ids


def toy_record(shape) -> dict:
    """The preprocessing record of toy volumes: a preset grid's for its shape, else with grid null.

    Toy volumes on no preset grid were made by no preprocessing, so nothing can preprocess a
    scan for a model trained on them: their record says grid null, and predict refuses its export.
    """
    preset = next((grid for grid in GRIDS.values() if grid.shape == tuple(shape)), None)
    record = preprocessing_record(PreprocessConfig(grid=preset or "tiny", registration="none"))
    if preset is None:
        record.update(grid=None, grid_shape=[int(size) for size in shape], voxel_size_mm=None)
    return record


def write_record(data_dir, name: str, record: dict, config: str = "tiny", version: str = TOY_VERSION) -> Path:
    """Writes a preprocessing record into a prepared dataset's metadata.json, as the builders' TFDS does.

    Returns:
        The prepared folder `<data_dir>/<name>/<config>/<version>`.
    """
    import tensorflow_datasets as tfds

    folder = Path(data_dir) / name / config / version
    tfds.core.MetadataDict(preprocessing=record).save_metadata(folder)
    return folder


def store_toy_tfds(
    data_dir, name: str, shape, splits: dict, record: dict | None = None, with_record: bool = True
) -> Path:
    """Writes a prepared TFDS dataset `<name>/tiny` with every feature training and evaluation read.

    Args:
        data_dir: TFDS data dir.
        name: Dataset name.
        shape: Volume shape (x, y, z).
        splits: Split name -> (volumes, ages, subject_ids), e.g. from toy_cohort.
        record: Its preprocessing record (None: `toy_record(shape)`).
        with_record: False writes no record, as the builders before version 1.1.0 did.

    Returns:
        The prepared folder.
    """
    import tensorflow_datasets as tfds

    features = tfds.features.FeaturesDict(
        {
            "volume": tfds.features.Tensor(shape=shape, dtype=np.float16, encoding="zlib"),
            "age": np.float32,
            "subject_id": tfds.features.Text(),
            "session": tfds.features.Text(),
            "site": tfds.features.Text(),
            "sex": tfds.features.Text(),
            "registration_ncc": np.float32,
        }
    )
    labels = dict(session="", site="site-a", registration_ncc=np.float32(0.9))
    examples = {
        split: [
            (index, dict(volume=volume.astype(np.float16), age=age, subject_id=subject,
                         sex="F" if index % 2 else "M", **labels))
            for index, (volume, age, subject) in enumerate(zip(*cohort, strict=True))
        ]
        for split, cohort in splits.items()
    }  # fmt: skip
    tfds.dataset_builders.store_as_tfds_dataset(
        name=name, version=TOY_VERSION, features=features, split_datasets=examples, config="tiny",
        data_dir=str(data_dir),
    )  # fmt: skip
    folder = Path(data_dir) / name / "tiny" / TOY_VERSION
    if with_record:
        write_record(data_dir, name, record or toy_record(shape))
    return folder
