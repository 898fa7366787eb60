"""Affine registration of a scan to the MNI152 2009a template, with SimpleITK.

`mni152_images` loads the template and brain mask that nilearn ships (no
download). `register_to_template` folds the estimated affine into the scan's
header, so `brainage_tf.preprocessing` interpolates the voxels only once, onto
the model grid. nilearn and SimpleITK are imported when first needed.
"""

from __future__ import annotations

import dataclasses
import functools

import nibabel as nib
import nibabel.processing
import numpy as np

from brainage_tf.errors import DegenerateAffineError, RegistrationError


@functools.lru_cache(maxsize=1)
def mni152_images() -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    """The MNI152 2009a T1 template and brain mask at 1 mm, shipped with nilearn."""
    from nilearn import datasets  # imported late: nilearn's import costs about a second

    template = datasets.load_mni152_template(resolution=1)
    mask = datasets.load_mni152_brain_mask(resolution=1)
    return (
        nib.Nifti1Image(np.asarray(template.dataobj, dtype=np.float32), template.affine),
        nib.Nifti1Image(np.asarray(mask.dataobj, dtype=np.float32), mask.affine),
    )


# Registration runs at this resolution: fine enough for a 12-parameter affine,
# coarse enough to register a 1 mm scan in about a second on one core.
REGISTRATION_VOXEL_MM = 2.0

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _to_sitk(image: nib.Nifti1Image):
    """An axis-aligned RAS+ nibabel image as a SimpleITK image (LPS physical space)."""
    import SimpleITK as sitk

    data = np.asarray(image.dataobj, dtype=np.float32)
    sitk_image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    sitk_image.SetSpacing([float(v) for v in nib.affines.voxel_sizes(image.affine)])
    origin = _RAS_TO_LPS @ image.affine[:, 3]
    sitk_image.SetOrigin([float(v) for v in origin[:3]])
    sitk_image.SetDirection([-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0])
    return sitk_image


@dataclasses.dataclass(frozen=True)
class _Level:
    """One resolution of the registration pyramid, run as its own optimisation."""

    shrink: int  # of the 2 mm images, by block averaging: 1, 2, 4, ...
    learning_rate: float  # the first step, mm of the largest voxel shift
    min_step: float
    iterations: int
    sampling: float  # fraction of the fixed grid's voxels in the metric; 1.0 is all of them
    masked: bool  # samples only near the brain (`BRAIN_MARGIN_VOXELS`)
    # Gradient-filter the whole moving image first; else central differences at the samples,
    # cheaper for the sparse 2 mm samples but a wrong basin at 8 mm for toddler heads.
    filtered_gradient: bool


# Coarse to fine (`benchmarks/registration_accuracy.py` chose them): 8 mm with every voxel (sparse
# samples there found a wrong basin for toddler heads), 4 mm with a quarter, then 2 mm near the brain
# only, from a 1 mm step down to 0.1 micrometre (1 micrometre doubled the template errors);
# infant heads use most of the 200 iterations.
LEVELS = (
    _Level(4, 1.0, 1e-2, 200, 1.0, False, True),
    _Level(2, 1.0, 1e-2, 200, 0.25, False, True),
    _Level(1, 1.0, 1e-4, 200, 0.2, True, False),
)
# The template brain mask dilated by this many 2 mm voxels: the samples that carry the alignment
# (brain, its border, the skull next to it); the far background is 70 % of the grid and cost.
BRAIN_MARGIN_VOXELS = 4
SAMPLING_SEED = 20200403


@functools.lru_cache(maxsize=1)
def _registration_template():
    """The template pyramid (one image per `LEVELS` entry) and the 2 mm metric mask, once per process."""
    import SimpleITK as sitk

    template, mask = mni152_images()
    fixed = _to_sitk(_downsampled(template))
    brain = _to_sitk(nibabel.processing.resample_to_output(mask, REGISTRATION_VOXEL_MM, order=1)) > 0.5
    near_brain = sitk.BinaryDilate(sitk.Cast(brain, sitk.sitkUInt8), [BRAIN_MARGIN_VOXELS] * 3)
    return _pyramid(fixed), near_brain


def _downsampled(image: nib.Nifti1Image) -> nib.Nifti1Image:
    """``image`` anti-aliased and resampled to `REGISTRATION_VOXEL_MM` (scipy beats ITK here on one core)."""
    smoothed = nibabel.processing.smooth_image(image, antialias_fwhm(image, REGISTRATION_VOXEL_MM))
    return nibabel.processing.resample_to_output(smoothed, REGISTRATION_VOXEL_MM, order=1)


def _pyramid(image) -> list:
    """``image`` at each level's shrink factor, coarse to fine, each coarser level the previous one halved.

    Block averaging is the cheapest anti-aliasing (milliseconds, against 0.1 s for a Gaussian).
    """
    import SimpleITK as sitk

    by_shrink = {1: image}
    for shrink in sorted(level.shrink for level in LEVELS)[1:]:
        by_shrink[shrink] = sitk.BinShrink(by_shrink[shrink // 2], [2, 2, 2])
    return [by_shrink[level.shrink] for level in LEVELS]


def register_to_template(image: nib.Nifti1Image, path: str | None = None) -> nib.Nifti1Image:
    """Affinely registers ``image`` to MNI152 and returns it with MNI world coordinates.

    SimpleITK estimates a 12-parameter affine with Mattes mutual information,
    which tolerates the inverted grey/white contrast of infant T1 scans, over
    the resolutions of `LEVELS` (8, 4 and 2 mm) from a centre-of-mass
    initialisation. Each level is its own optimisation on images downsampled
    once, so the coarse levels cost little; the 2 mm level samples only near
    the template brain. The voxels are not resampled here: the affine is
    folded into the image header, so the scan is interpolated only once, onto
    the target grid.

    Args:
        image: A 3D RAS+ image (see ``nibabel.as_closest_canonical``).
        path: Named in errors.

    Returns:
        The same voxels with a voxel-to-MNI-millimetre affine.

    Raises:
        RegistrationError: if SimpleITK cannot register the image.
        DegenerateAffineError: if the estimated transform is singular.
    """
    import SimpleITK as sitk

    fixed_levels, near_brain = _registration_template()
    moving_levels = _pyramid(_to_sitk(_downsampled(image)))
    transform = sitk.CenteredTransformInitializer(
        fixed_levels[-1],
        moving_levels[-1],
        sitk.AffineTransform(3),
        sitk.CenteredTransformInitializerFilter.MOMENTS,
    )
    # Multi-threaded metric sums vary in the last bits (measured: 2e-3 after z-scoring), so a
    # scan would register differently at ingest and at predict; parallelism comes from processes.
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        for level, fixed, moving in zip(LEVELS, fixed_levels, moving_levels, strict=True):
            _registration_method(level, transform, near_brain).Execute(fixed, moving)
    except RuntimeError as error:
        raise RegistrationError(path, f"affine registration to MNI152 failed ({error})") from error
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    matrix = np.array(transform.GetMatrix()).reshape(3, 3)
    centre = np.array(transform.GetCenter())
    translation = np.array(transform.GetTranslation())
    fixed_to_moving_lps = np.eye(4)
    fixed_to_moving_lps[:3, :3] = matrix
    fixed_to_moving_lps[:3, 3] = centre + translation - matrix @ centre
    template_to_subject = _RAS_TO_LPS @ fixed_to_moving_lps @ _RAS_TO_LPS
    if not np.isfinite(template_to_subject).all() or abs(np.linalg.det(template_to_subject[:3, :3])) < 1e-6:
        raise DegenerateAffineError(path, "affine registration to MNI152 produced a degenerate transform")
    return nib.Nifti1Image(
        np.asarray(image.dataobj, dtype=np.float32), np.linalg.inv(template_to_subject) @ image.affine
    )


def _registration_method(level: _Level, transform, near_brain):
    """The SimpleITK registration of one level, updating ``transform`` in place."""
    import SimpleITK as sitk

    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    if level.sampling < 1.0:
        method.SetMetricSamplingStrategy(method.RANDOM)
        method.SetMetricSamplingPercentage(level.sampling, seed=SAMPLING_SEED)
    if level.masked:
        method.SetMetricFixedMask(near_brain)
    method.MetricUseFixedImageGradientFilterOff()  # mutual information uses only the moving gradient
    if not level.filtered_gradient:
        method.MetricUseMovingImageGradientFilterOff()
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=level.learning_rate,
        minStep=level.min_step,
        numberOfIterations=level.iterations,
        gradientMagnitudeTolerance=1e-8,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetInitialTransform(transform, inPlace=True)
    return method


def antialias_fwhm(image: nib.Nifti1Image, target_mm: float) -> np.ndarray:
    """Per-axis Gaussian FWHM (mm) that removes detail finer than ``target_mm`` before downsampling.

    Used before both downsamplings: to the registration copy here, and onto the model grid.
    """
    source_size = nib.affines.voxel_sizes(image.affine)
    return np.sqrt(np.clip(target_mm**2 - source_size**2, 0.0, None))
