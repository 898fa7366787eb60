"""Tests of the tf.data input pipeline on in-memory example dicts (no TFDS builder needed)."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from brainage_tf import data
from brainage_tf.errors import DatasetError

SHAPE = (6, 5, 4)


def _source(ages, subject_ids=None, dtype=np.float16):
    count = len(ages)
    volumes = np.arange(count, dtype=np.float32)[:, None, None, None] * np.ones((count, *SHAPE), np.float32)
    subject_ids = subject_ids if subject_ids is not None else [f"sub-{index:03d}" for index in range(count)]
    return data.in_memory_source(volumes.astype(dtype), ages, subject_ids)


def test_validation_is_carved_by_subject_and_is_stable():
    # Three sessions per subject: every session of a subject must land on the same side.
    subjects = [f"sub-{index:03d}" for index in range(60) for _ in range(3)]
    labels = data.read_labels(_source(np.linspace(0, 22, 180), subjects))
    selection = data.Selection(validation_fraction=0.25)
    validation = data.role_mask(labels, selection, "validation")
    train = data.role_mask(labels, selection, "train")
    assert not np.any(validation & train)
    assert np.all(validation | train)
    validation_subjects = set(labels.subject_ids[validation])
    assert validation_subjects.isdisjoint(labels.subject_ids[train])
    assert 5 <= len(validation_subjects) <= 25
    # A stable hash: the same subject ids give the same split in another process or run.
    again = data.validation_flags(np.array(subjects[::3]), 0.25).numpy()
    assert set(np.array(subjects[::3])[again]) == {s.decode() for s in validation_subjects}


def test_validation_splits_by_subject_into_selection_and_calibration_and_the_seed_redraws_it():
    subjects = [f"sub-{index:03d}" for index in range(200) for _ in range(3)]
    labels = data.read_labels(_source(np.linspace(0, 22, 600), subjects))
    selection = data.Selection(validation_fraction=0.5, calibration_fraction=0.5)
    validation = data.role_mask(labels, selection, "validation")
    picking = data.role_mask(labels, selection, "selection")
    calibration = data.role_mask(labels, selection, "calibration")
    np.testing.assert_array_equal(picking | calibration, validation)
    assert not np.any(picking & calibration)
    assert set(labels.subject_ids[picking]).isdisjoint(labels.subject_ids[calibration])
    # About 50 of the 100 validation subjects each: binomial sd 5, so 30-70 is 4 sd.
    assert 30 <= len(set(labels.subject_ids[calibration])) <= 70
    # Another seed draws other calibration subjects from the same validation part.
    other = data.role_mask(labels, dataclasses.replace(selection, calibration_seed=1), "calibration")
    assert np.any(other != calibration) and not np.any(other & ~validation)
    # Without a calibration part, every validation subject picks the epoch.
    no_part = dataclasses.replace(selection, calibration_fraction=0.0)
    np.testing.assert_array_equal(data.role_mask(labels, no_part, "selection"), validation)
    assert not data.role_mask(labels, no_part, "calibration").any()
    with pytest.raises(ValueError, match="role must be one of"):
        data.role_mask(labels, selection, "test")


def test_age_range_filters_training_and_validation():
    ages = np.linspace(0, 22, 50)
    labels = data.read_labels(_source(ages))
    selection = data.Selection(0.0, 6.0, 0.2)
    kept = data.role_mask(labels, selection, "train") | data.role_mask(labels, selection, "validation")
    np.testing.assert_array_equal(kept, ages <= 6.0)
    assert data.role_mask(labels, selection, "all").sum() == (ages <= 6.0).sum()


def test_listed_subjects_are_the_only_ones_used_and_exactly_a_fifth_of_them_validate():
    # Two sessions per subject; 10 of the 40 subjects listed.
    subjects = [f"sub-{index:03d}" for index in range(40) for _ in range(2)]
    source = _source(np.linspace(0, 22, 80), subjects)
    labels = data.read_labels(source)
    listed = tuple(f"sub-{index:03d}" for index in range(0, 40, 4))
    selection = data.Selection(validation_fraction=0.2, subjects=listed)
    train = data.role_mask(labels, selection, "train")
    validation = data.role_mask(labels, selection, "validation")
    used = {s.decode() for s in labels.subject_ids[train | validation]}
    assert used == set(listed)
    assert data.role_mask(labels, selection, "all").sum() == 20
    # round(0.2 x 10) = 2 subjects, whatever their hashes; and the hash's own share is lumpy.
    assert len(set(labels.subject_ids[validation])) == 2
    assert set(labels.subject_ids[validation]).isdisjoint(labels.subject_ids[train])
    # 5 listed subjects at 0.2: one validates (max(1, round(1.0))).
    few = dataclasses.replace(selection, subjects=listed[:5])
    assert len(set(labels.subject_ids[data.role_mask(labels, few, "validation")])) == 1
    # The tf.data filter (traced, not eager) keeps the same examples as role_mask.
    batches = data.evaluation_dataset(source, selection, "validation", int(validation.sum()), 4)
    volumes = np.concatenate([volume.numpy() for volume, _ in batches])
    np.testing.assert_array_equal(volumes[:, 0, 0, 0, 0], np.flatnonzero(validation))


@pytest.mark.parametrize("role", ["validation", "selection", "calibration"])
def test_evaluation_dataset_matches_role_mask_and_adds_channel_axis(role):
    ages = np.linspace(0, 22, 40).astype(np.float32)
    source = _source(ages)
    selection = data.Selection(2.0, 18.0, 0.5)
    mask = data.role_mask(data.read_labels(source), selection, role)
    assert 0 < mask.sum() < 20
    batches = list(data.evaluation_dataset(source, selection, role, int(mask.sum()), 4))
    volumes = np.concatenate([volume.numpy() for volume, _ in batches])
    got_ages = np.concatenate([age.numpy() for _, age in batches])
    assert volumes.dtype == np.float32 and volumes.shape[1:] == (*SHAPE, 1)
    np.testing.assert_array_equal(got_ages, ages[mask])
    # Volume content survives: example i was filled with the value i.
    np.testing.assert_array_equal(volumes[:, 0, 0, 0, 0], np.flatnonzero(mask))


def test_training_dataset_is_infinite_full_batches_of_training_examples_only():
    ages = np.linspace(0, 22, 30).astype(np.float32)
    source = _source(ages)
    selection = data.Selection(validation_fraction=0.3)
    train_mask = data.role_mask(data.read_labels(source), selection, "train")
    stream = data.training_epochs(source, selection, int(train_mask.sum()), global_batch_size=4, seed=1)(0)
    seen = []
    for volumes, batch_ages in stream.take(20):
        assert volumes.shape == (4, *SHAPE, 1) and batch_ages.shape == (4,)
        seen.extend(volumes.numpy()[:, 0, 0, 0, 0].astype(int))
    assert set(seen) == set(np.flatnonzero(train_mask))


def test_training_order_is_a_function_of_seed_and_epoch_only():
    source = _source(np.linspace(0, 22, 30))
    selection = data.Selection()
    count = int(data.role_mask(data.read_labels(source), selection, "train").sum())

    def first_ages(seed, epoch):
        # A fresh factory each time, as in a resumed process.
        epochs = data.training_epochs(source, selection, count, global_batch_size=2, seed=seed)
        return np.concatenate([ages.numpy() for _, ages in epochs(epoch).take(5)])

    np.testing.assert_array_equal(first_ages(3, 2), first_ages(3, 2))
    assert not np.array_equal(first_ages(3, 2), first_ages(3, 1))
    assert not np.array_equal(first_ages(3, 2), first_ages(4, 2))


def test_shuffle_seed_is_pinned_across_processes_and_versions():
    # Literal values: a change here silently changes every run's batch order.
    assert [data.shuffle_seed(0, epoch) for epoch in range(3)] == [2968811710, 3964924996, 3141116543]
    assert data.shuffle_seed(7, 59) == 428720438


def test_validation_hash_is_pinned_across_processes_and_versions():
    ids = np.array(["sub-0001", "sub-0002", "nihpd_1001", "s15", "sub-NDARAB123"])
    buckets = tf.strings.to_hash_bucket_fast(ids, data.HASH_BUCKETS).numpy().tolist()
    assert buckets == [3445, 1055, 736, 3526, 6236]


def test_epochs_share_one_cache_of_decoded_volumes():
    reads = []
    source = _source(np.linspace(0, 22, 12))

    def counting_dataset():
        def count(age):
            reads.append(1)
            return age

        return source.make_dataset().map(
            lambda example: {**example, "age": tf.py_function(count, [example["age"]], tf.float32)}
        )

    counted = data.ExampleSource(counting_dataset, source.make_label_dataset, SHAPE, 0, "counted")
    epochs = data.training_epochs(counted, data.Selection(validation_fraction=0.0), 12, 4, seed=0)
    for epoch in range(3):
        list(epochs(epoch).take(3))
    assert len(reads) == 12


def test_sharding_policy_is_file_only_with_a_file_per_worker():
    source = _source(np.linspace(0, 22, 10))
    policy = data.training_epochs(source, data.Selection(), 8, 2, seed=0, num_workers=2)(0).options()
    assert policy.experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.DATA
    file_source = data.ExampleSource(source.make_dataset, source.make_label_dataset, SHAPE, 4, "files")
    policy = data.training_epochs(file_source, data.Selection(), 8, 2, seed=0, num_workers=2)(0).options()
    assert policy.experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.FILE


def test_unknown_tfds_dataset_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="no_such_cohort"):
        data.tfds_source("no_such_cohort/small", "train", str(tmp_path))


def test_a_version_folder_without_dataset_info_is_unprepared_without_a_warning(tmp_path, caplog):
    import tfds_builders.synthetic_cohort.synthetic_cohort_dataset_builder  # noqa: F401  (registers it)

    (tmp_path / "synthetic_cohort" / "tiny" / "1.1.0").mkdir(parents=True)  # a build under way
    with caplog.at_level("WARNING"):
        assert not data.is_prepared("synthetic_cohort/tiny", str(tmp_path))
    assert caplog.records == []
