"""Group saliency maps: the mean normalised saliency of an evaluated split per age group.

Each scan's map is first normalised (|saliency| / its mean, `normalised_magnitude`),
so every scan weighs the same whatever its gradient scale, then averaged within the
age groups of `brainage_tf.evaluation.metrics` (the paper's groups, or the edges the
evaluation used). `python -m brainage_tf.evaluate --run RUN --explain` writes one
NIfTI per group and a montage comparing the groups into `<eval folder>/explain/`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from brainage_tf.evaluation.metrics import age_group_index, age_group_labels
from brainage_tf.explanation import montage
from brainage_tf.explanation.nifti import write_map
from brainage_tf.explanation.saliency import AgeFunction, SaliencySettings, normalised_magnitude, saliency_map

MONTAGE = "group_montage.png"
SUMMARY = "group_maps.json"


@dataclasses.dataclass
class GroupMap:
    """Running sums of one age group: normalised saliency, preprocessed scans, and their count."""

    saliency_sum: np.ndarray
    volume_sum: np.ndarray
    count: int = 0

    @property
    def mean_saliency(self) -> np.ndarray:
        return self.saliency_sum / max(self.count, 1)

    @property
    def mean_volume(self) -> np.ndarray:
        return self.volume_sum / max(self.count, 1)


def group_saliency(
    age_fn: AgeFunction,
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    edges: Sequence[float],
    settings: SaliencySettings,
) -> dict[str, GroupMap]:
    """Sums every scan's normalised saliency into its age group.

    Args:
        age_fn: The model's age function.
        batches: (volumes [b, x, y, z], chronological ages [b]) pairs.
        edges: Age-group edges; scans outside them are not counted.
        settings: How each map is computed.

    Returns:
        Label -> GroupMap, every group of `edges` in order (empty groups have count 0).
    """
    labels = age_group_labels(edges)
    groups: dict[str, GroupMap] = {}
    for volumes, ages in batches:
        for volume, index in zip(volumes, age_group_index(ages, edges), strict=True):
            if index < 0:
                continue
            if not groups:
                groups = {label: GroupMap(np.zeros(volume.shape), np.zeros(volume.shape)) for label in labels}
            group = groups[labels[index]]
            group.saliency_sum += normalised_magnitude(saliency_map(age_fn, volume, settings))
            group.volume_sum += volume
            group.count += 1
    return groups


def write_group_maps(
    groups: dict[str, GroupMap], affine: np.ndarray, out_dir: Path, settings: SaliencySettings, title: str
) -> Path:
    """Writes `group_<label>.nii.gz` per non-empty group, the group montage and a JSON summary.

    Returns:
        The montage's path.

    Raises:
        ValueError: No group holds a scan.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    filled = {label: group for label, group in groups.items() if group.count}
    if not filled:
        raise ValueError("no evaluated scan falls in an age group: no group map")
    summary = {"settings": settings.to_json(), "normalisation": "|saliency| / mean |saliency| per scan"}
    summary["groups"] = {}
    for label, group in filled.items():
        name = f"group_{label}.nii.gz"
        write_map(group.mean_saliency, affine, out_dir / name, f"mean norm {settings.describe()}")
        summary["groups"][label] = {"file": name, "n": group.count}
    (out_dir / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    panels = {label: (g.mean_saliency, g.mean_volume, g.count) for label, g in filled.items()}
    return montage.group_montage(panels, affine, out_dir / MONTAGE, title)


def explain_split(
    model, source, selection, edges: Sequence[float], affine: np.ndarray, out_dir: Path, title: str
) -> Path:
    """Group maps of every selected scan of a dataset split, with the default saliency settings.

    Args:
        model: The run's Keras model.
        source: The evaluated `brainage_tf.data.ExampleSource`.
        selection: Its age selection (`brainage_tf.data.Selection`).
        edges: Age-group edges of the evaluation.
        affine: Voxel-to-MNI affine of the dataset's grid.
        out_dir: Folder for the group NIfTIs, the montage and the summary.
        title: Montage title.

    Returns:
        The montage's path.
    """
    from brainage_tf import data
    from brainage_tf.explanation.saliency import keras_age_function

    settings = SaliencySettings()
    batches = (
        (volumes.numpy()[..., 0], labels["age"].numpy())
        for volumes, labels in data.prediction_dataset(source, selection, "all", settings.batch_size)
    )
    groups = group_saliency(keras_age_function(model), batches, edges, settings)
    return write_group_maps(groups, affine, out_dir, settings, title)
