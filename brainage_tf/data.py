"""tf.data input pipeline: TFDS examples -> (volume, age) batches for training and evaluation.

Every dataset the trainer reads is a `tf.data.Dataset` of dicts with at least
`volume` (grid shape, float16 or float32), `age` (float32, years) and
`subject_id` (string), the TFDS feature contract of docs/architecture.md.
The pipeline:

1. keeps the examples whose age lies in [min_age, max_age] (and, when the run lists its
   subjects, of those subjects only: `brainage_tf.subject_roles`);
2. carves a validation part out of the training split by subject: a subject is in
   validation when a stable 64-bit FarmHash of its `subject_id` falls below the
   validation fraction, so every session of a subject lands on the same side, the
   split is identical in every process and on every run, and the test split is
   never touched for model selection. A keyed SipHash of the `subject_id` splits
   the validation subjects in turn into a selection part, which picks the best
   epoch, and a calibration part for the conformal intervals, kept out of that choice;
3. caches the decoded volumes in memory (as float16) when they fit a budget;
4. for training: one dataset per epoch, shuffled with a seed that is a function of
   (run seed, epoch), so a resumed run sees exactly the batches an uninterrupted
   one would; it repeats and batches to the global batch, and the consumer runs a
   fixed number of steps per epoch, so every replica of every worker sees a full
   batch at every step;
5. shards by file across workers when the source has at least one file per worker
   and by data otherwise (tf.distribute auto-shard policy, set explicitly).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from brainage_tf.defaults import DEVELOPMENTAL_AGE_COLUMN, TEMPO_COLUMN
from brainage_tf.errors import DatasetError, PreprocessingRecordError
from brainage_tf.preprocessing_record import check_record
from brainage_tf.split_slices import split_info
from brainage_tf.subject_roles import (  # noqa: F401  (part of this module's interface)
    CALIBRATION_HASH_KEY,
    HASH_BUCKETS,
    ROLES,
    Selection,
    calibration_flags,
    role_flags,
    validation_flags,
)

DEFAULT_CACHE_BUDGET_BYTES = 2 * 1024**3
# The key of the prepared dataset's metadata.json under which the builders record their preprocessing.
PREPROCESSING_METADATA_KEY = "preprocessing"


@dataclasses.dataclass(frozen=True)
class ExampleSource:
    """A re-readable source of example dicts plus what the trainer needs to know about it.

    Attributes:
        make_dataset: Returns a fresh dataset of dicts with `volume`, `age`, `subject_id`.
        make_label_dataset: Returns the same examples in the same order, possibly
            without decoding `volume` (used to count and plan before heavy work).
        volume_shape: Spatial shape (x, y, z) of every volume.
        num_files: Files the source reads (0 for in-memory sources); decides file sharding.
        description: Human-readable name for messages, e.g. "synthetic_cohort/small:train".
        preprocessing: The preprocessing record of a TFDS dataset
            (`brainage_tf.preprocessing_record`); None for in-memory sources.
        fingerprint: SHA-256 of the prepared dataset's dataset_info.json (its splits' shard
            lengths and bytes), which a rebuild changes; None for in-memory sources.
    """

    make_dataset: Callable[[], tf.data.Dataset]
    make_label_dataset: Callable[[], tf.data.Dataset]
    volume_shape: tuple[int, int, int]
    num_files: int
    description: str
    preprocessing: dict | None = None
    fingerprint: str | None = None


@dataclasses.dataclass(frozen=True)
class Labels:
    """Ages and subject ids of a source, in dataset order."""

    ages: np.ndarray
    subject_ids: np.ndarray


def default_data_dir() -> str:
    """TFDS data dir: $TFDS_DATA_DIR if set, else ~/tensorflow_datasets."""
    return os.environ.get("TFDS_DATA_DIR") or str(Path("~/tensorflow_datasets").expanduser())


def tfds_source(name: str, split: str, data_dir: str | None = None) -> ExampleSource:
    """An ExampleSource reading a prepared TFDS dataset.

    Args:
        name: TFDS name with config, e.g. "synthetic_cohort/small".
        split: Split name, e.g. "train", or a TFDS split expression that cuts no subject's scans
            apart, e.g. "replication[:50%]" (`brainage_tf.split_slices`).
        data_dir: TFDS data dir (default: default_data_dir()).

    Returns:
        The source; nothing is read until its datasets are iterated.

    Raises:
        DatasetError: The dataset is unknown, not prepared in data_dir, has no such split (or a
            slice that separates a subject's scans), or does not record its preprocessing
            (prepared by an older version of the builders).
    """
    import tensorflow_datasets as tfds

    data_dir = data_dir or default_data_dir()
    builder = _prepared_builder(name, data_dir)
    record = preprocessing_of(builder, name, data_dir)
    num_files = split_info(builder, name, split, data_dir).num_shards
    shape = tuple(int(dim) for dim in builder.info.features["volume"].shape)
    read_config = tfds.ReadConfig(shuffle_seed=0, try_autocache=False)

    def make_dataset() -> tf.data.Dataset:
        return builder.as_dataset(split=split, shuffle_files=False, read_config=read_config)

    def make_label_dataset() -> tf.data.Dataset:
        return builder.as_dataset(
            split=split,
            shuffle_files=False,
            read_config=read_config,
            decoders={"volume": tfds.decode.SkipDecoding()},
        )

    info = os.path.join(builder.data_dir, "dataset_info.json")  # also gs:// and other TF file systems
    fingerprint = None
    if tf.io.gfile.exists(info):
        with tf.io.gfile.GFile(info, "rb") as file:
            fingerprint = hashlib.sha256(file.read()).hexdigest()
    return ExampleSource(
        make_dataset, make_label_dataset, shape, num_files, f"{name}:{split}", record, fingerprint
    )


def preprocessing_of(builder, name: str, data_dir: str) -> dict:
    """The preprocessing record in a prepared dataset's metadata, or DatasetError saying to rebuild it."""
    metadata = builder.info.metadata  # restored from metadata.json when read from the files
    try:
        return check_record(None if metadata is None else metadata.get(PREPROCESSING_METADATA_KEY))
    except PreprocessingRecordError as error:
        dataset, _, config = name.partition("/")
        raise DatasetError(
            f"TFDS dataset {name!r} in {builder.data_dir}: {error} (an older version of the builders "
            f"prepared it); rebuild it: `tfds build tfds_builders/{dataset} --config {config or '<config>'} "
            f"--data_dir {data_dir}`."
        ) from None


def _prepared_builder(name: str, data_dir: str):
    """Returns the TFDS builder of a dataset prepared in data_dir, or raises DatasetError.

    A prepared dataset loads from its files, so this module needs no builder code:
    it stays below `tfds_builders`, which imports it never.
    """
    import tensorflow_datasets as tfds

    dataset, _, config = name.partition("/")
    hint = (
        f"build it first, e.g. `tfds build tfds_builders/{dataset} --config {config or '<config>'} "
        f"--data_dir {data_dir}`"
    )
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise DatasetError(
            f"unknown TFDS dataset {name!r}: not prepared in the data dir {data_dir} "
            f"and not a registered builder; {hint}."
        ) from None
    except ValueError as error:
        raise DatasetError(f"TFDS dataset {name!r}: {str(error).splitlines()[0]}") from None
    # A version folder without dataset_info.json is a build under way or a failed one; asking
    # builder.is_prepared() about it logs a TFDS warning on every check.
    if not (builder.data_path / "dataset_info.json").exists() or not builder.is_prepared():
        raise DatasetError(f"TFDS dataset {name!r} is not prepared in {data_dir}; {hint}.")
    return builder


def is_prepared(name: str, data_dir: str | None = None) -> bool:
    """True when the TFDS dataset `name` is prepared in data_dir."""
    try:
        _prepared_builder(name, data_dir or default_data_dir())
    except DatasetError:
        return False
    return True


def in_memory_source(
    volumes: np.ndarray, ages: Sequence[float], subject_ids: Sequence[str], description: str = "in-memory"
) -> ExampleSource:
    """An ExampleSource over arrays held in memory (tests, benchmarks, notebooks).

    Args:
        volumes: Array (n, x, y, z), any float dtype.
        ages: n ages in years.
        subject_ids: n subject ids.
        description: Name used in messages.

    Returns:
        The source.
    """
    volumes = np.asarray(volumes)
    tensors = {
        "volume": volumes,
        "age": np.asarray(ages, np.float32),
        "subject_id": np.asarray(subject_ids, dtype=object).astype(str),
    }
    labels = {key: tensors[key] for key in ("age", "subject_id")}
    return ExampleSource(
        make_dataset=lambda: tf.data.Dataset.from_tensor_slices(tensors),
        make_label_dataset=lambda: tf.data.Dataset.from_tensor_slices(labels),
        volume_shape=tuple(int(dim) for dim in volumes.shape[1:]),
        num_files=0,
        description=description,
    )


def read_labels(source: ExampleSource) -> Labels:
    """Reads every age and subject id of a source without decoding its volumes."""
    ages, subject_ids = [], []
    label_dataset = source.make_label_dataset().map(lambda e: (e["age"], e["subject_id"]))
    for age_batch, id_batch in label_dataset.batch(1024).as_numpy_iterator():
        ages.append(age_batch)
        subject_ids.append(id_batch)
    if not ages:
        return Labels(np.zeros(0, np.float32), np.zeros(0, object))
    return Labels(np.concatenate(ages).astype(np.float32), np.concatenate(subject_ids))


def role_mask(labels: Labels, selection: Selection, role: str) -> np.ndarray:
    """Boolean mask of the examples a role uses (one of ROLES).

    "validation" is every held-out subject: "selection", which picks the best epoch,
    plus "calibration", which took no part in that choice. "all" keeps every
    example in the age range, for evaluating a held-out split.
    """
    ages = tf.constant(labels.ages, tf.float32)
    return role_flags(labels.subject_ids, ages, selection, role).numpy()


def _select(dataset: tf.data.Dataset, selection: Selection, role: str) -> tf.data.Dataset:
    """Filters example dicts to a role, with the same flags as role_mask."""
    return dataset.filter(lambda example: role_flags(example["subject_id"], example["age"], selection, role))


def _to_pair(example):
    """Example dict -> (volume (x, y, z, 1) float32, age float32)."""
    volume = tf.cast(example["volume"], tf.float32)[..., tf.newaxis]
    return volume, tf.cast(example["age"], tf.float32)


def _cached_volumes(
    source: ExampleSource, selection: Selection, role: str, num_examples: int, cache_budget_bytes: int
) -> tf.data.Dataset:
    """Selected examples as (float16 volume, age), cached in memory when they fit the budget."""
    dataset = _select(source.make_dataset(), selection, role).map(
        lambda e: (tf.cast(e["volume"], tf.float16), e["age"]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    volume_bytes = 2 * int(np.prod(source.volume_shape))
    if num_examples * volume_bytes <= cache_budget_bytes:
        dataset = dataset.cache()
    return dataset


def shuffle_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of one epoch: a fixed function of (run seed, epoch), so resume is exact."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def training_epochs(
    source: ExampleSource,
    selection: Selection,
    num_examples: int,
    global_batch_size: int,
    seed: int,
    num_workers: int = 1,
    cache_budget_bytes: int = DEFAULT_CACHE_BUDGET_BYTES,
) -> Callable[[int], tf.data.Dataset]:
    """A factory of each epoch's training stream of (volume, age) global batches.

    Every epoch's dataset shares one in-memory cache of the decoded volumes.

    Args:
        source: Training split.
        selection: Age range and validation carve-out.
        num_examples: Training examples selected (from role_mask), to size cache and shuffle.
        global_batch_size: Per-replica batch times the number of replicas.
        seed: Run seed; epoch e is shuffled with shuffle_seed(seed, e).
        num_workers: Workers the stream is distributed to; with at least one file per
            worker the stream is sharded by file, otherwise by data.
        cache_budget_bytes: Cache decoded volumes in memory when they fit.

    Returns:
        epoch -> infinite dataset of (float32 (batch, x, y, z, 1), float32 (batch,)); the
        consumer takes num_examples // global_batch_size batches per epoch.
    """
    cached = _cached_volumes(source, selection, "train", num_examples, cache_budget_bytes)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.FILE
        if source.num_files >= num_workers > 1
        else tf.data.experimental.AutoShardPolicy.DATA
    )

    def epoch_dataset(epoch: int) -> tf.data.Dataset:
        # The same order on every iteration of this dataset; repeat keeps workers that
        # read different files from running dry mid-epoch.
        return (
            cached.shuffle(
                max(num_examples, 1), seed=shuffle_seed(seed, epoch), reshuffle_each_iteration=False
            )
            .repeat()
            .map(
                lambda volume, age: _to_pair({"volume": volume, "age": age}),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
            .batch(global_batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
            .with_options(options)
        )

    return epoch_dataset


def evaluation_dataset(
    source: ExampleSource,
    selection: Selection,
    role: str,
    num_examples: int,
    batch_size: int,
    cache_budget_bytes: int = DEFAULT_CACHE_BUDGET_BYTES,
) -> tf.data.Dataset:
    """Finite, ordered (volume, age) batches of a role (see role_mask), for evaluation.

    Evaluation runs in full on every worker (not distributed), so each worker
    computes the same validation MAE and takes the same model-selection decision.
    """
    dataset = _cached_volumes(source, selection, role, num_examples, cache_budget_bytes)
    return (
        dataset.map(
            lambda volume, age: _to_pair({"volume": volume, "age": age}), num_parallel_calls=tf.data.AUTOTUNE
        )
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


# Per-example fields that evaluation carries into predictions.csv when a source has them (datasets
# prepared before builder 1.2.0 lack the ground truth, and are read all the same).
METADATA_FIELDS = (
    "subject_id",
    "session",
    "site",
    "sex",
    "registration_ncc",
    TEMPO_COLUMN,
    DEVELOPMENTAL_AGE_COLUMN,
)


def prediction_dataset(
    source: ExampleSource, selection: Selection, role: str, batch_size: int
) -> tf.data.Dataset:
    """Finite, ordered batches of (volume, labels) for prediction, with each example's metadata.

    Args:
        source: The split to predict.
        selection: Age range and validation carve-out.
        role: One of ROLES (see role_mask).
        batch_size: Volumes per batch.

    Returns:
        Dataset of (float32 (batch, x, y, z, 1), dict with `age` and every METADATA_FIELDS
        entry the source has).
    """
    available = set(source.make_label_dataset().element_spec)
    fields = ("age", *(name for name in METADATA_FIELDS if name in available))

    def split(example):
        labels = {name: example[name] for name in fields}
        return tf.cast(example["volume"], tf.float32)[..., tf.newaxis], labels

    return (
        _select(source.make_dataset(), selection, role)
        .map(split, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
