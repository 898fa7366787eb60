"""TFDS split expressions such as `replication[:50%]`, accepted only when they cut no subject apart.

TFDS slices a split by examples (scans), in the order it stored them; `+` joins parts
(https://www.tensorflow.org/datasets/splits). A site's scans then divide into a part to
fine-tune on and a held-out part to evaluate on with the flags users of TFDS know
(`--train-split 'replication[:50%]'`, `evaluate --split 'replication[50%:]'`). Subjects,
not scans, are the unit of every split here, so an expression that puts some of a
subject's scans inside and others outside (a longitudinal split cut between two
visits) is refused: build such a dataset with subject-level splits instead.
"""

from __future__ import annotations

from collections import Counter

from brainage_tf.errors import DatasetError, one_line


def base_splits(split: str) -> list[str]:
    """The named splits of an expression: `["replication"]` for `replication[:50%]`."""
    return [part.split("[", 1)[0].strip() for part in split.split("+")]


def split_info(builder, name: str, split: str, data_dir: str):
    """The TFDS split info of a split name or expression, checked to cut no subject's scans apart.

    Args:
        builder: The prepared TFDS builder.
        name: Its TFDS name with config, for messages.
        split: A split name, or an expression of them with slices.
        data_dir: Its data dir, for messages.

    Raises:
        DatasetError: An unknown split, an expression TFDS cannot parse, or a slice that
            separates a subject's scans.
    """
    known = builder.info.splits
    for base in base_splits(split):
        if base not in known:
            raise DatasetError(f"{name} in {data_dir} has no split {base!r}; it has {sorted(known)}.")
    if split in known:
        return known[split]
    try:
        info = known[split]
    except (KeyError, ValueError) as error:
        raise DatasetError(f"{name}: split {split!r}: {one_line(error).split(' See format')[0]}") from None
    inside = _subject_counts(builder, split)
    whole = _subject_counts(builder, "+".join(dict.fromkeys(base_splits(split))))
    cut = sorted(subject for subject, count in inside.items() if count != whole[subject])
    if cut:
        raise DatasetError(
            f"{name}: split {split!r} cuts the scans of {len(cut)} subjects apart (e.g. {cut[0]}): subjects, "
            "not scans, are the unit of a split; slice a split with one scan per subject, or build the "
            "dataset with subject-level splits."
        )
    return info


def _subject_counts(builder, split: str) -> Counter:
    """Scans per subject of a split expression, read without decoding a volume."""
    import tensorflow_datasets as tfds

    skip = {"volume": tfds.decode.SkipDecoding()}
    dataset = builder.as_dataset(split=split, shuffle_files=False, decoders=skip)
    return Counter(
        subject.decode() for subject in tfds.as_numpy(dataset.map(lambda example: example["subject_id"]))
    )
