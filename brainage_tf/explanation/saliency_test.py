"""SmoothGrad and integrated gradients on small Keras models whose answers are known."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest

from brainage_tf.explanation import saliency
from brainage_tf.explanation.saliency import SaliencySettings

SHAPE = (12, 14, 10)


def quadratic_model(seed: int = 0) -> keras.Model:
    """age = Dense(mean(relu(conv(v))^2)): smooth enough for finite differences, not linear."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((*SHAPE, 1))
    features = keras.layers.Conv3D(3, 3, padding="same", activation="tanh")(inputs)
    pooled = keras.layers.GlobalAveragePooling3D()(features * features)
    return keras.Model(inputs, keras.layers.Dense(1)(pooled))


def volume(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, SHAPE).astype(np.float32)


def test_gradient_matches_central_finite_differences():
    model = quadratic_model()
    age_fn = saliency.keras_age_function(model)
    x = volume()
    grad = saliency.gradients(age_fn, x[np.newaxis])[0]
    step = 1e-2
    for voxel in [(0, 0, 0), (5, 7, 3), (11, 13, 9), (6, 2, 8)]:
        up, down = x.copy(), x.copy()
        up[voxel] += step
        down[voxel] -= step
        ages = np.asarray(model(np.stack([up, down])[..., np.newaxis]), np.float64)[:, 0]
        assert grad[voxel] == pytest.approx((ages[0] - ages[1]) / (2 * step), rel=0.05, abs=1e-5), voxel


def test_smoothgrad_without_noise_is_the_gradient_and_noise_changes_it():
    age_fn = saliency.keras_age_function(quadratic_model())
    x = volume()
    plain = saliency.gradients(age_fn, x[np.newaxis])[0]
    noiseless = saliency.saliency_map(age_fn, x, SaliencySettings(samples=3, noise=0.0, batch_size=2))
    np.testing.assert_allclose(noiseless, plain, rtol=1e-4, atol=1e-7)
    noisy = saliency.saliency_map(age_fn, x, SaliencySettings(samples=3, noise=0.2, batch_size=2))
    assert not np.allclose(noisy, plain, rtol=1e-2)
    again = saliency.saliency_map(age_fn, x, SaliencySettings(samples=3, noise=0.2, batch_size=3))
    np.testing.assert_allclose(again, noisy, rtol=1e-4, atol=1e-7)  # same seed, other batching


def test_integrated_gradients_are_complete():
    """Sundararajan et al.'s completeness: the map sums to age(volume) - age(all-zero baseline)."""
    model = quadratic_model()
    x = volume(3)
    settings = SaliencySettings(method="integrated_gradients", samples=64, batch_size=16)
    attribution = saliency.saliency_map(saliency.keras_age_function(model), x, settings)
    ages = np.asarray(model(np.stack([x, np.zeros_like(x)])[..., np.newaxis]), np.float64)[:, 0]
    assert ages[0] - ages[1] != pytest.approx(0.0, abs=1e-3)
    assert attribution.sum() == pytest.approx(ages[0] - ages[1], rel=0.02)


def test_a_model_that_ignores_its_input_has_no_gradient():
    with pytest.raises(ValueError, match="no gradient"):
        saliency.gradients(_constant, volume()[np.newaxis])


def _constant(volumes):
    import tensorflow as tf

    return tf.ones([tf.shape(volumes)[0]])


def test_settings_are_checked_and_fit_the_nifti_header():
    for settings in (SaliencySettings(), SaliencySettings("integrated_gradients", samples=256, seed=12345)):
        assert len(settings.describe().encode()) < 80 and settings.method in settings.describe()
        assert settings.to_json()["units"] and settings.to_json()["samples"] == settings.samples
    bad_settings = {
        "saliency method must be one of smoothgrad, integrated_gradients, got 'gradcam'": dict(
            method="gradcam"
        ),
        "samples and batch size must be at least 1, got 0, 8": dict(samples=0),
        "noise must be a fraction of the intensity range in [0, 1), got 1.5": dict(noise=1.5),
        "samples and batch size must be at least 1, got 32, 0": dict(batch_size=0),
    }
    for message, bad in bad_settings.items():
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            SaliencySettings(**bad)


def test_normalised_magnitude_has_mean_one_and_keeps_zeros():
    values = np.array([[-2.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(saliency.normalised_magnitude(values), [[2.0, 0.0], [1.0, 1.0]])
    assert not saliency.normalised_magnitude(np.zeros((2, 2))).any()
