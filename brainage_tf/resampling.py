"""The one resampling of the package: anti-alias, then trilinear interpolation onto a voxel grid.

Scans go onto the model grid with it (`brainage_tf.preprocessing`), and explanation
maps from the model grid back into a scan's own space (`brainage_tf.explanation`),
so both directions interpolate alike. `brainage_tf.preprocessing` re-exports it.
"""

from __future__ import annotations

import nibabel as nib
import nibabel.processing
import numpy as np
import scipy.ndimage

from brainage_tf.registration import antialias_fwhm


def resample_image(
    image: nib.Nifti1Image, shape: tuple[int, ...], affine: np.ndarray, *, overwrite: bool = False
) -> np.ndarray:
    """Anti-aliases, then trilinearly resamples ``image`` onto the voxel grid ``(shape, affine)``.

    Args:
        image: A 3D image with its voxel-to-world affine.
        shape: Voxel shape of the target grid.
        affine: Voxel-to-world affine of the target grid, in the image's world space.
        overwrite: Smooth ``image``'s float voxel array in place instead of in a copy (the
            same result, one full-size array less); its voxels are then no longer the input's.

    Returns:
        float32 voxels of shape ``shape``; 0 outside the image.
    """
    # The finest target edge: anisotropic targets lose no detail they can hold.
    fwhm = antialias_fwhm(image, float(nib.affines.voxel_sizes(affine).min()))
    if fwhm.max() > 0 and overwrite:
        _smooth_in_place(image, fwhm)
    elif fwhm.max() > 0:
        image = nibabel.processing.smooth_image(image, fwhm, mode="nearest")
    resampled = nibabel.processing.resample_from_to(
        image, (tuple(shape), affine), order=1, mode="constant", cval=0.0
    )
    return np.asarray(resampled.dataobj, dtype=np.float32)


def _smooth_in_place(image: nib.Nifti1Image, fwhm: np.ndarray) -> None:
    """`nibabel.processing.smooth_image(image, fwhm, mode="nearest")`, written into image's own array.

    The same sigmas and the same scipy filter: scipy filters line by line through a buffer,
    so in place gives the same bits (tested on real and synthetic scans, docs/preprocessing.md).
    """
    data = image.dataobj
    if not isinstance(data, np.ndarray) or not data.flags.writeable:
        raise ValueError("overwrite=True needs an image that holds a writeable voxel array")
    voxel_sizes = np.sqrt(np.sum(image.affine[:, :3] ** 2, 0))  # as smooth_image computes them
    sigma = nibabel.processing.fwhm2sigma(np.asarray(fwhm) / voxel_sizes)
    scipy.ndimage.gaussian_filter(data, sigma, mode="nearest", cval=0.0, output=data)
