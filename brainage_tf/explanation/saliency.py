"""Voxel saliency of a predicted age: SmoothGrad or integrated gradients.

Both need only the gradient of the predicted age with respect to the input volume,
which a Keras model and a loaded export's `serving_default` both give through
`tf.GradientTape`. SmoothGrad, the default, averages plain gradients, whose maps
changed when Adebayo et al. (NeurIPS 2018) randomised the model; integrated
gradients multiply by the input and kept more of its structure there, so check them
with `benchmarks/explain_sanity.py --method integrated_gradients`.

* SmoothGrad (Smilkov et al. 2017): the mean gradient over `samples` noisy copies
  of the volume, Gaussian noise of standard deviation `noise` times the volume's
  intensity range. Units: years per unit of z-scored intensity.
* Integrated gradients (Sundararajan et al. 2017): (volume - baseline) times the
  mean gradient along the straight path from the baseline, `samples` midpoint
  steps. The baseline is 0, the brain's mean intensity of a z-scored scan, so the
  map sums to about age(volume) - age(uniform brain) (completeness). Units: years.

The maps are signed: positive where brighter intensity raises the predicted age.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

SMOOTHGRAD, INTEGRATED_GRADIENTS = "smoothgrad", "integrated_gradients"
METHODS = (SMOOTHGRAD, INTEGRATED_GRADIENTS)

# A function from float32 volumes [batch, x, y, z] (a tf.Tensor) to predicted ages [batch].
AgeFunction = Callable[[object], object]


@dataclasses.dataclass(frozen=True)
class SaliencySettings:
    """How a saliency map is computed; written into every map's header and sidecar.

    Attributes:
        method: "smoothgrad" or "integrated_gradients".
        samples: Noisy copies (SmoothGrad) or path steps (integrated gradients). 32 keeps
            a small-grid scan near 2 s on 2 CPU cores (benchmarks/explain_speed.py).
        noise: SmoothGrad noise standard deviation as a fraction of the volume's
            intensity range; Smilkov et al. found 10-20 % gives the sharpest maps.
        batch_size: Volumes per gradient call.
        seed: Seed of the SmoothGrad noise.
    """

    method: str = SMOOTHGRAD
    samples: int = 32
    noise: float = 0.15
    batch_size: int = 8
    seed: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"saliency method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.samples < 1 or self.batch_size < 1:
            raise ValueError(
                f"samples and batch size must be at least 1, got {self.samples}, {self.batch_size}"
            )
        if not 0.0 <= self.noise < 1.0:
            raise ValueError(f"noise must be a fraction of the intensity range in [0, 1), got {self.noise}")

    def describe(self) -> str:
        """A short line for the NIfTI header's 80-byte `descrip` field."""
        if self.method == SMOOTHGRAD:
            return f"smoothgrad n={self.samples} noise={self.noise:g} seed={self.seed}"
        return f"integrated_gradients n={self.samples} baseline=0"

    def to_json(self) -> dict:
        """The settings with the units and reference of the method, for the JSON sidecar."""
        reference = {
            SMOOTHGRAD: "Smilkov et al. 2017, arXiv:1706.03825",
            INTEGRATED_GRADIENTS: "Sundararajan et al. 2017, ICML, arXiv:1703.01365",
        }[self.method]
        units = "years per unit z-scored intensity" if self.method == SMOOTHGRAD else "years"
        return {**dataclasses.asdict(self), "units": units, "reference": reference}


def keras_age_function(model) -> AgeFunction:
    """The age function of a Keras brain-age model, input (batch, x, y, z, 1), output (batch, 1)."""
    import tensorflow as tf

    @tf.function(autograph=False)
    def ages(volumes):
        return model(volumes[..., tf.newaxis], training=False)[:, 0]

    return ages


def gradients(age_fn: AgeFunction, volumes: np.ndarray) -> np.ndarray:
    """d(predicted age)/d(voxel) of each volume [batch, x, y, z].

    Each example's age depends on its own volume only (instance normalisation,
    inference mode), so the gradient of the batch sum is every example's own.

    Raises:
        ValueError: The age does not depend on the volume (no gradient path).
    """
    import tensorflow as tf

    inputs = tf.convert_to_tensor(np.asarray(volumes, np.float32))
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        ages = age_fn(inputs)
    grad = tape.gradient(ages, inputs)
    if grad is None:
        raise ValueError("the predicted age has no gradient with respect to the input volume")
    return grad.numpy()


def _mean_gradient(age_fn: AgeFunction, inputs: Callable[[int, int], np.ndarray], settings) -> np.ndarray:
    """Mean gradient over `settings.samples` inputs, built batch by batch by `inputs(start, count)`."""
    total = None
    for start in range(0, settings.samples, settings.batch_size):
        batch = gradients(age_fn, inputs(start, min(settings.batch_size, settings.samples - start)))
        total = batch.sum(axis=0) if total is None else total + batch.sum(axis=0)
    return total / settings.samples


def smoothgrad(age_fn: AgeFunction, volume: np.ndarray, settings: SaliencySettings) -> np.ndarray:
    """SmoothGrad map of one volume (x, y, z): the mean gradient over noisy copies."""
    volume = np.asarray(volume, np.float32)
    rng = np.random.default_rng(settings.seed)
    sigma = settings.noise * float(volume.max() - volume.min())

    def noisy(start: int, count: int) -> np.ndarray:
        noise = rng.normal(0.0, sigma, (count, *volume.shape)).astype(np.float32)
        return volume[np.newaxis] + noise

    return _mean_gradient(age_fn, noisy, settings)


def integrated_gradients(age_fn: AgeFunction, volume: np.ndarray, settings: SaliencySettings) -> np.ndarray:
    """Integrated-gradients map of one volume (x, y, z) from the all-zero baseline (midpoint rule)."""
    volume = np.asarray(volume, np.float32)
    alphas = ((np.arange(settings.samples) + 0.5) / settings.samples).astype(np.float32)

    def on_path(start: int, count: int) -> np.ndarray:
        return alphas[start : start + count, np.newaxis, np.newaxis, np.newaxis] * volume[np.newaxis]

    return volume * _mean_gradient(age_fn, on_path, settings)


def saliency_map(age_fn: AgeFunction, volume: np.ndarray, settings: SaliencySettings) -> np.ndarray:
    """The signed saliency map (x, y, z) of one preprocessed volume by `settings.method`."""
    method = smoothgrad if settings.method == SMOOTHGRAD else integrated_gradients
    return method(age_fn, volume, settings).astype(np.float32)


def normalised_magnitude(saliency: np.ndarray) -> np.ndarray:
    """|saliency| divided by its mean over the grid: 1 is average importance, whatever the map's scale.

    This puts scans with strong and weak gradients on one scale before they are
    averaged into group maps; an all-zero map stays zero.
    """
    magnitude = np.abs(np.asarray(saliency, np.float32))
    mean = float(magnitude.mean())
    return magnitude / mean if mean > 0 else magnitude
