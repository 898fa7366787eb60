"""One subject's T1-weighted scan at one age, rendered from the template anatomy.

Tissue composition and contrast follow the developmental curves at the subject's developmental
age; growth, head shape and a smooth random deformation follow; then a bias field, slice-profile
blur, resampling onto the site's oblique scanner grid and Rician noise. Files look like scanner
output: int16 data with a non-unit ``scl_slope`` and an affine that maps voxels to MNI152
millimetres, so ``registration="none"`` preprocessing is correct for them.
"""

from __future__ import annotations

import dataclasses
import gzip
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from brainage_tf.synthetic.anatomy import (
    TEMPLATE_RESOLUTION_MM,
    TemplateAnatomy,
    soft_level_set,
    voxel_world_coordinates,
)
from brainage_tf.synthetic.exterior import SKULL_INTENSITY, Exterior, exterior_intensity, with_neck
from brainage_tf.synthetic.sites import SITES, Site, scan_affine, world_voxel_size
from brainage_tf.synthetic.trajectories import (
    relative_brain_volume,
    ventricle_volume_factor,
    white_grey_ratio,
    white_matter_share,
)

# Log-normal sd of the developmental tempo: one sd makes every tissue look 10 % older or younger.
TEMPO_LOG_SD = 0.10
SIZE_LOG_SD = 0.02
SEX_VOLUME_RATIO = 1.04
DEFORMATION_SD_MM = 2.0
_DISPLACEMENT_CONTROL_SHAPE = (7, 8, 7)
# The template's WM share (at its middle WM level) stands for this value of white_matter_share.
_ADULT_WM_SHARE = 0.40
_SCALP_INTENSITY = 0.85


@dataclasses.dataclass(frozen=True)
class SubjectTraits:
    """Anatomy of one subject, fixed across sessions.

    Attributes:
        sex: "M" or "F".
        site: The acquisition site.
        tempo: Developmental tempo; developmental age = age * tempo.
        size: Individual brain-volume factor (sex included).
        axis_stretch: Per-axis head-shape factors (mean 1).
        displacement_control: Smooth deformation control points, mm, shape (3, 7, 8, 7).
    """

    sex: str
    site: Site
    tempo: float
    size: float
    axis_stretch: np.ndarray
    displacement_control: np.ndarray

    def developmental_age(self, age: float) -> float:
        """The age the anatomy is drawn at: what the scan truly shows, written out as ground truth."""
        return age * self.tempo


def draw_subject_traits(rng: np.random.Generator, profile: str, sex: str | None = None) -> SubjectTraits:
    """Draw one subject's anatomy and site.

    Args:
        rng: Random generator of this subject.
        profile: "discovery" or "replication".
        sex: Force "M" or "F"; drawn at random when None.

    Returns:
        The subject's traits.
    """
    sites = SITES[profile]
    site = sites[int(rng.integers(len(sites)))]
    drawn_sex = "M" if rng.random() < 0.5 else "F"
    sex = sex or drawn_sex
    tempo = float(np.exp(rng.normal(0.0, TEMPO_LOG_SD)))
    sex_factor = np.sqrt(SEX_VOLUME_RATIO) if sex == "M" else 1.0 / np.sqrt(SEX_VOLUME_RATIO)
    size = float(np.exp(rng.normal(0.0, SIZE_LOG_SD)) * sex_factor)
    axis_stretch = np.exp(rng.normal(0.0, 0.02, 3))
    axis_stretch /= np.prod(axis_stretch) ** (1.0 / 3.0)
    control = rng.normal(0.0, DEFORMATION_SD_MM, (3, *_DISPLACEMENT_CONTROL_SHAPE))
    return SubjectTraits(sex, site, tempo, size, axis_stretch, control.astype(np.float32))


def _level_for(target: float, levels: np.ndarray, values: np.ndarray) -> float:
    """Invert a monotonically decreasing lookup table."""
    return float(np.interp(target, values[::-1], levels[::-1]))


def _anatomy_intensity(
    anatomy: TemplateAnatomy, site: Site, developmental_age: float, exterior: Exterior | None
) -> np.ndarray:
    """Template-space T1 intensity at a developmental age, before growth scaling and deformation.

    The skull and scalp are the anatomy's own, or those of `exterior` when given.
    """
    ventricle_level = _level_for(
        float(ventricle_volume_factor(developmental_age)), anatomy.ventricle_levels, anatomy.ventricle_factors
    )
    ventricles = soft_level_set(anatomy.ventricles_smooth, ventricle_level)
    extra_ventricular_csf = np.clip(anatomy.csf - anatomy.ventricles, 0, 1)
    tissue = np.clip(anatomy.tissue + anatomy.ventricles - ventricles, 0, 1)
    template_share = anatomy.wm_shares[len(anatomy.wm_levels) // 2]
    target_share = float(white_matter_share(developmental_age)) * template_share / _ADULT_WM_SHARE
    wm_level = _level_for(target_share, anatomy.wm_levels, anatomy.wm_shares)
    white = soft_level_set(anatomy.wm_smooth, wm_level) * tissue
    grey = tissue - white
    white_intensity = site.grey * float(white_grey_ratio(developmental_age, site.grey))
    if exterior is None:
        skull, scalp = anatomy.skull * SKULL_INTENSITY, anatomy.scalp * _SCALP_INTENSITY
    else:
        skull, scalp = exterior_intensity(anatomy, exterior)
    # Summed in this order: the float32 rounding, and so every fixed-exterior scan's bytes, stay.
    return (
        grey * site.grey
        + white * white_intensity
        + (extra_ventricular_csf + ventricles) * site.csf
        + skull
        + scalp
    ).astype(np.float32)


def _linear_interpolation_weights(n_control: int, n_out: int) -> np.ndarray:
    """(n_out, n_control) weights of linear interpolation with control points at cell centres."""
    position = np.clip((np.arange(n_out) + 0.5) * n_control / n_out - 0.5, 0, n_control - 1)
    lower = np.minimum(np.floor(position).astype(int), n_control - 2)
    fraction = position - lower
    weights = np.zeros((n_out, n_control), dtype=np.float32)
    weights[np.arange(n_out), lower] = 1.0 - fraction
    weights[np.arange(n_out), lower + 1] = fraction
    return weights


def _growth(traits: SubjectTraits, developmental_age: float) -> float:
    """The head's linear growth factor against the template (brain volume's cube root)."""
    return (float(relative_brain_volume(developmental_age)) * traits.size) ** (1.0 / 3.0)


def _grow_and_deform(
    anatomy: TemplateAnatomy, images: Sequence[np.ndarray], traits: SubjectTraits, developmental_age: float
) -> list[np.ndarray]:
    """Scale template-space images about the brain centre and apply the smooth deformation.

    Every image goes through the same coordinates, so a scan and its true brain mask share one anatomy.
    """
    scale = _growth(traits, developmental_age) * traits.axis_stretch
    shape = images[0].shape
    control = ndimage.gaussian_filter(traits.displacement_control, (0, 0.7, 0.7, 0.7))
    # Separable linear interpolation of the control grid: same field as a trilinear zoom, ~10x faster.
    displacement = control
    for axis, size in enumerate(shape):
        weights = _linear_interpolation_weights(control.shape[axis + 1], size)
        displacement = np.moveaxis(np.tensordot(weights, displacement, axes=([1], [axis + 1])), 0, axis + 1)
    grid = np.indices(shape, dtype=np.float32)
    coordinates = np.empty_like(grid)
    for axis in range(3):
        centre = anatomy.centre_voxel[axis]
        coordinates[axis] = (
            centre
            + (grid[axis] - centre) / scale[axis]
            + displacement[axis] * scale[axis] / TEMPLATE_RESOLUTION_MM
        )
    return [
        ndimage.map_coordinates(image, coordinates, order=1, mode="constant", cval=0.0) for image in images
    ]


def _bias_field(affine: np.ndarray, site: Site, rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
    """Smooth multiplicative bias field over the rendering grid (voxel-to-MNI `affine`)."""
    world = voxel_world_coordinates(shape, affine) / 100.0
    linear = rng.normal(0.0, site.bias / 2.0, 3)
    quadratic = rng.normal(0.0, site.bias / 3.0, 3)
    radial = -site.bias if site.bias_centre_bright else 0.0
    coil_gradient = 0.0 if site.bias_centre_bright else site.bias
    log_field = coil_gradient * world[1] + radial * (world**2).sum(axis=0)
    for axis in range(3):
        log_field = log_field + linear[axis] * world[axis] + quadratic[axis] * world[axis] ** 2
    return np.exp(log_field).astype(np.float32)


def render_scan(
    anatomy: TemplateAnatomy,
    traits: SubjectTraits,
    age: float,
    rng: np.random.Generator,
    voxel_scale: float = 1.0,
    exterior: Exterior | None = None,
) -> nib.Nifti1Image:
    """Render one T1-weighted acquisition of a subject at an age.

    Args:
        anatomy: Template anatomy from :func:`load_template_anatomy`.
        traits: The subject's anatomy and site.
        age: Chronological age in years.
        rng: Random generator of this session (field of view, bias field, noise).
        voxel_scale: Multiplies the site's voxel size.
        exterior: The site's skull, scalp and neck (`brainage_tf.synthetic.exterior`); None for
            the anatomy's own, without a neck.

    Returns:
        An int16 NIfTI image with scl_slope set and a voxel -> MNI mm affine.
    """
    return _render(anatomy, traits, age, rng, voxel_scale, exterior, with_mask=False)[0]


def render_scan_with_mask(
    anatomy: TemplateAnatomy,
    traits: SubjectTraits,
    age: float,
    rng: np.random.Generator,
    voxel_scale: float = 1.0,
    exterior: Exterior | None = None,
) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    """The scan of :func:`render_scan` (the same bytes, the same draws) and its true brain mask.

    The mask is the template's brain (tissue and the CSF inside the MNI152 brain mask; not the
    extra-axial CSF, skull or scalp) grown and deformed with the scan's own coordinates and
    carried onto the scan's own grid: a voxel is brain when the interpolated mask at its centre
    is at least 0.5. It is the ground truth skull stripping is measured against.

    Returns:
        (scan, uint8 mask of 0 and 1 with the scan's shape and affine).
    """
    return _render(anatomy, traits, age, rng, voxel_scale, exterior, with_mask=True)


def _render(
    anatomy: TemplateAnatomy,
    traits: SubjectTraits,
    age: float,
    rng: np.random.Generator,
    voxel_scale: float,
    exterior: Exterior | None,
    with_mask: bool,
) -> tuple[nib.Nifti1Image, nib.Nifti1Image | None]:
    """The scan, and its true brain mask when asked (None otherwise); see render_scan_with_mask."""
    site = traits.site
    developmental_age = traits.developmental_age(age)
    neck_mm = 0.0 if exterior is None else exterior.neck_mm
    images = [_anatomy_intensity(anatomy, site, developmental_age, exterior)]
    images += [anatomy.brain] if with_mask or neck_mm > 0 else []
    image, *brain = _grow_and_deform(anatomy, images, traits, developmental_age)
    grid_affine = anatomy.affine
    if neck_mm > 0:
        growth = _growth(traits, developmental_age)
        image, brain[0], grid_affine = with_neck(image, brain[0], grid_affine, exterior, growth)
    image *= _bias_field(grid_affine, site, rng, image.shape)
    affine, shape = scan_affine(site, rng, voxel_scale, inferior_mm=neck_mm)
    # Slice profile: thick voxels average tissue along their axis (partial volume).
    excess_mm = np.maximum(world_voxel_size(site, voxel_scale) - TEMPLATE_RESOLUTION_MM, 0.0)
    world_axis_sigma = excess_mm / 2.355 / TEMPLATE_RESOLUTION_MM
    if world_axis_sigma.any():
        image = ndimage.gaussian_filter(image, world_axis_sigma)
    to_template = np.linalg.inv(grid_affine) @ affine
    signal = ndimage.affine_transform(
        image, to_template, output_shape=shape, order=1, mode="constant", cval=0.0
    )
    # Rician magnitude noise, computed in place to spare 50 MB temporaries per 1 mm scan.
    noise = rng.standard_normal((2, *shape), dtype=np.float32)
    noise *= site.noise
    noise[0] += signal
    np.square(noise, out=noise)
    magnitude = np.sqrt(noise[0] + noise[1], out=noise[0])
    magnitude *= site.gain / site.slope
    np.rint(magnitude, out=magnitude)
    raw = np.clip(magnitude, 0, np.iinfo(np.int16).max).astype(np.int16)
    scan = _scanner_image(raw, affine)
    scan.header.set_slope_inter(site.slope, 0.0)
    if not with_mask:
        return scan, None
    on_scan = ndimage.affine_transform(
        brain[0], to_template, output_shape=shape, order=1, mode="constant", cval=0.0
    )
    return scan, _scanner_image((on_scan >= 0.5).astype(np.uint8), affine)


def _scanner_image(data: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """A NIfTI image in mm whose qform and sform both hold the scanner affine."""
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm", "sec")
    image.header.set_qform(affine, code=1)
    image.header.set_sform(affine, code=1)
    return image


def write_nifti_gz(image: nib.Nifti1Image, path: Path) -> None:
    """Write a .nii.gz whose bytes depend only on the image (gzip mtime fixed to 0).

    Args:
        image: Single-file NIfTI-1 image.
        path: Destination ``.nii.gz`` path.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(image.to_bytes(), compresslevel=1, mtime=0))
