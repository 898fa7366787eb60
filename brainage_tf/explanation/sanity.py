"""Sanity checks for saliency maps (Adebayo et al., NeurIPS 2018), run in the tests and benchmarks.

* Model randomisation: a map that barely changes when the model's weights are
  re-initialised explains the input, not the model. `rank_correlation` compares
  the trained and the re-initialised model's maps (Spearman, on magnitudes).
* Planted signal: for a model whose age depends on one known region only,
  `mass_fraction` of the map inside that region must be near 1.
* Occlusion consistency: hiding the slabs ranked most important must move the
  prediction more than hiding as many random slabs (`occlusion_consistency`).

docs/explain.md gives the thresholds and the figures measured on the demo runs.
"""

from __future__ import annotations

import numpy as np
import scipy.stats

from brainage_tf.defaults import SLICE_AXIS_INDEX
from brainage_tf.explanation.occlusion import occlude, pooled_slabs, predict_ages
from brainage_tf.explanation.saliency import AgeFunction

# Model randomisation passes below this Spearman correlation of |maps|; docs/explain.md says why.
RANDOMISATION_MAX_RANK_CORRELATION = 0.5


def rank_correlation(first: np.ndarray, second: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Spearman rank correlation of two maps' magnitudes, over `mask` (default: every voxel).

    Magnitudes, as Adebayo et al. compare them: a sign flip of the whole map is no change of
    what it highlights.
    """
    a, b = np.abs(np.asarray(first)), np.abs(np.asarray(second))
    if mask is not None:
        a, b = a[mask], b[mask]
    return float(scipy.stats.spearmanr(a.ravel(), b.ravel()).statistic)


def reinitialised(model, seed: int = 1):
    """The same Keras architecture with freshly initialised weights (the randomised model)."""
    import keras

    keras.utils.set_random_seed(seed)
    clone = keras.models.clone_model(model)
    if all(np.array_equal(a, b) for a, b in zip(clone.get_weights(), model.get_weights(), strict=True)):
        raise ValueError("re-initialising the model left its weights unchanged")
    return clone


def mass_fraction(saliency: np.ndarray, region: np.ndarray) -> float:
    """Share of the map's absolute mass inside the boolean `region` (0 for an all-zero map)."""
    magnitude = np.abs(np.asarray(saliency, np.float64))
    total = magnitude.sum()
    return float(magnitude[region].sum() / total) if total > 0 else 0.0


def occlusion_consistency(
    age_fn: AgeFunction,
    volume: np.ndarray,
    importance: np.ndarray,
    slice_axis: str,
    pool_size: int,
    top: int,
    draws: int = 20,
    seed: int = 0,
) -> dict:
    """The age change of occluding the `top` most important slabs together, against random slabs.

    Args:
        age_fn: The model's age function.
        volume: The preprocessed volume the importance was measured on.
        importance: Per-slab importance (|age change|), in slab order.
        slice_axis: Axis of the slabs.
        pool_size: Slices per slab.
        top: How many slabs are occluded at once.
        draws: Random sets of `top` slabs drawn for comparison.
        seed: Seed of the draws.

    Returns:
        {"top_change": |change| for the top slabs, "random_mean_change": mean |change| of
        the random sets, "random_changes": each draw's, "share_of_draws_exceeded": share of
        random sets whose change the top slabs exceed}.
    """
    axis = SLICE_AXIS_INDEX[slice_axis]
    slabs = pooled_slabs(volume.shape[axis], pool_size)
    if not 1 <= top < len(slabs) or len(importance) != len(slabs):
        raise ValueError(f"need 1 <= top < {len(slabs)} slabs and one importance per slab")
    rng = np.random.default_rng(seed)
    chosen = [np.argsort(importance)[::-1][:top]] + [
        rng.choice(len(slabs), top, replace=False) for _ in range(draws)
    ]
    volumes = np.stack([volume] + [occlude(volume, axis, [slabs[i] for i in picks]) for picks in chosen])
    ages = predict_ages(age_fn, volumes)
    changes = np.abs(ages[1:] - ages[0])
    return {
        "top_change": float(changes[0]),
        "random_mean_change": float(changes[1:].mean()),
        "random_changes": changes[1:].tolist(),
        "share_of_draws_exceeded": float(np.mean(changes[0] > changes[1:])),
    }
