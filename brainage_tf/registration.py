"""Affine registration of a scan to the MNI152 2009a template, with SimpleITK.

`mni152_images` loads the template and brain mask that nilearn ships (no
download). `register_to_template` folds the estimated affine into the scan's
header, so `brainage_tf.preprocessing` interpolates the voxels only once, onto
the model grid. nilearn and SimpleITK are imported when first needed.
"""

from __future__ import annotations

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
# coarse enough to register a 1 mm scan in a few seconds on one core.
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


@functools.lru_cache(maxsize=1)
def _registration_template():
    """The MNI152 template at the registration resolution as a SimpleITK image, built once per process."""
    template = mni152_images()[0]
    return _to_sitk(nibabel.processing.resample_to_output(template, REGISTRATION_VOXEL_MM, order=1))


def register_to_template(image: nib.Nifti1Image, path: str | None = None) -> nib.Nifti1Image:
    """Affinely registers ``image`` to MNI152 and returns it with MNI world coordinates.

    SimpleITK estimates a 12-parameter affine with Mattes mutual information,
    which tolerates the inverted grey/white contrast of infant T1 scans, over
    three resolution levels from a centre-of-mass initialisation. The voxels are
    not resampled here: the affine is folded into the image header, so the
    scan is interpolated only once, onto the target grid.

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

    moving_image = nibabel.processing.resample_to_output(
        nibabel.processing.smooth_image(image, antialias_fwhm(image, REGISTRATION_VOXEL_MM)),
        REGISTRATION_VOXEL_MM,
        order=1,
    )
    fixed = _registration_template()
    moving = _to_sitk(moving_image)
    initial = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.AffineTransform(3), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.2, seed=20200403)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-4, numberOfIterations=200, gradientMagnitudeTolerance=1e-6
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([4, 2, 1])
    method.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetInitialTransform(initial, inPlace=True)
    # Multi-threaded metric sums vary in the last bits (measured: 2e-3 after z-scoring), so a
    # scan would register differently at ingest and at predict; parallelism comes from processes.
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        method.Execute(fixed, moving)
    except RuntimeError as error:
        raise RegistrationError(path, f"affine registration to MNI152 failed ({error})") from error
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    matrix = np.array(initial.GetMatrix()).reshape(3, 3)
    centre = np.array(initial.GetCenter())
    translation = np.array(initial.GetTranslation())
    fixed_to_moving_lps = np.eye(4)
    fixed_to_moving_lps[:3, :3] = matrix
    fixed_to_moving_lps[:3, 3] = centre + translation - matrix @ centre
    template_to_subject = _RAS_TO_LPS @ fixed_to_moving_lps @ _RAS_TO_LPS
    if not np.isfinite(template_to_subject).all() or abs(np.linalg.det(template_to_subject[:3, :3])) < 1e-6:
        raise DegenerateAffineError(path, "affine registration to MNI152 produced a degenerate transform")
    return nib.Nifti1Image(
        np.asarray(image.dataobj, dtype=np.float32), np.linalg.inv(template_to_subject) @ image.affine
    )


def antialias_fwhm(image: nib.Nifti1Image, target_mm: float) -> np.ndarray:
    """Per-axis Gaussian FWHM (mm) that removes detail finer than ``target_mm`` before downsampling.

    Used before both downsamplings: to the registration copy here, and onto the model grid.
    """
    source_size = nib.affines.voxel_sizes(image.affine)
    return np.sqrt(np.clip(target_mm**2 - source_size**2, 0.0, None))
