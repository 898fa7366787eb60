"""Adebayo et al.'s sanity checks on a planted-signal model: the map and the occlusion find the region."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from brainage_tf.explanation import occlusion, sanity
from brainage_tf.explanation.saliency import METHODS, SaliencySettings, keras_age_function, saliency_map

SHAPE = (16, 20, 14)
# The planted region: 6 x 8 x 4 voxels (4.3 % of the volume) in axial slices 4-7.
REGION = (slice(4, 10), slice(6, 14), slice(4, 8))


def region_mask(dilate: int = 0) -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    mask[tuple(slice(s.start - dilate, s.stop + dilate) for s in REGION)] = True
    return mask


def planted_model(seed: int = 0) -> keras.Model:
    """A random 3x3x3 convolution counted only inside REGION: age = Dense(mean(mask * relu(conv)))."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((*SHAPE, 1))
    features = keras.layers.Conv3D(4, 3, padding="same", activation="relu")(inputs)
    masked = features * region_mask()[np.newaxis, ..., np.newaxis].astype(np.float32)
    pooled = keras.layers.GlobalAveragePooling3D()(masked)
    return keras.Model(inputs, keras.layers.Dense(1)(pooled))


def scan(seed: int = 0) -> np.ndarray:
    """A brain-like volume: smooth background plus noise, so every voxel carries signal."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij")
    return (np.exp(-sum(g * g for g in grids)) + rng.normal(0.0, 0.3, SHAPE)).astype(np.float32)


@pytest.mark.parametrize("method", METHODS)
def test_planted_signal_map_mass_concentrates_in_the_region(method):
    age_fn = keras_age_function(planted_model())
    settings = SaliencySettings(method=method, samples=16)
    fractions = [
        sanity.mass_fraction(saliency_map(age_fn, scan(seed), settings), region_mask()) for seed in range(2)
    ]
    # The region holds 4.3 % of the voxels; a 3x3x3 kernel lets some gradient reach its one-voxel rim.
    assert min(fractions) > 0.5, fractions
    rim = [
        sanity.mass_fraction(saliency_map(age_fn, scan(seed), settings), region_mask(1)) for seed in range(2)
    ]
    assert min(rim) > 0.999, rim


def test_occluding_the_top_slabs_moves_the_age_more_than_random_slabs():
    age_fn = keras_age_function(planted_model())
    x = scan()
    table = occlusion.slab_importance(age_fn, x, "axial", 2, np.eye(4))
    # Only the slabs holding slices 3-8 (the region and its rim) can matter.
    assert set(table.loc[table["importance"] > 1e-6, "slab"]) <= {1, 2, 3, 4}
    result = sanity.occlusion_consistency(
        age_fn, x, table["importance"].to_numpy(), "axial", 2, top=2, draws=20
    )
    assert result["top_change"] > 2 * result["random_mean_change"] > 0
    assert result["share_of_draws_exceeded"] >= 0.75


def test_model_randomisation_changes_the_map():
    model = planted_model()
    x = scan()
    settings = SaliencySettings(samples=16)
    trained = saliency_map(keras_age_function(model), x, settings)
    randomised = saliency_map(keras_age_function(sanity.reinitialised(model, seed=7)), x, settings)
    region = region_mask(1)  # outside it both maps are exactly 0, which would tie the ranks
    assert sanity.rank_correlation(trained, randomised, region) < sanity.RANDOMISATION_MAX_RANK_CORRELATION
    assert sanity.rank_correlation(trained, trained * -3.0, region) == pytest.approx(1.0)


def test_mass_fraction_of_known_maps():
    saliency = np.zeros(SHAPE)
    saliency[REGION] = -1.0
    saliency[0, 0, 0] = 192.0 / 3.0  # the region's 192 voxels hold 3/4 of the mass
    assert sanity.mass_fraction(saliency, region_mask()) == pytest.approx(0.75)
    assert sanity.mass_fraction(np.zeros(SHAPE), region_mask()) == 0.0
