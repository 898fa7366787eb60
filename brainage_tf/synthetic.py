"""Embedded synthetic developmental cohort: T1-weighted NIfTI scans of children aged 0-22 years.

Every subject is built from the MNI152 2009a template and its grey/white-matter probability maps,
which nilearn ships with the package (nothing is downloaded). The generator applies documented
developmental effects (see docs/synthetic.md for the curves and the literature behind them):

* Brain growth: tissue volume is about a third of adult volume at birth, ~72 % at 1 year and
  ~83 % at 2 years, then rises slowly to a plateau in adolescence (Dekaban & Sadowsky 1978;
  Knickmeyer et al. 2008; Lenroot et al. 2007). Sex and individual size variation are included.
* Myelination contrast: on T1, white matter is darker than grey matter in the first months,
  isointense around 6-12 months and brighter from about 2 years; contrast keeps maturing slowly
  afterwards (Barkovich et al. 1988; Barkovich 2005; Paus et al. 2001; Dubois et al. 2014).
* Tissue trajectories: cortical grey matter peaks in mid-childhood and thins through adolescence,
  white matter grows into the twenties, ventricles enlarge slowly (Giedd et al. 1999;
  Lenroot et al. 2007).
* Individual variability: smooth random deformations and a per-subject developmental tempo
  (log-normal, sd 0.10: a subject's tissues look 10 % older or younger at one sd), so the best
  achievable age error is not zero.
* Site and scanner effects: the ``discovery`` profile imitates several 1.5 T sites (lower
  contrast, 3 mm slices at some sites); ``replication`` imitates 3 T MPRAGE (1 mm isotropic,
  LIA/LPS orientation, another bias field and noise level).

Files look like scanner output: int16 data with a non-unit ``scl_slope``, a cropped and shifted
field of view, and oblique, reoriented affines. The affine of every scan maps voxels to MNI152
millimetres, so ``registration="none"`` preprocessing is correct for this cohort.

Command line::

    python -m brainage_tf.synthetic --out DIR --subjects N [--min-age A] [--max-age B]
        [--profile discovery|replication] [--seed S] [--sessions K] [--workers W]
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from brainage_tf import __version__

PROFILES = ("discovery", "replication")
MAX_SUPPORTED_AGE = 30.0
TEMPO_LOG_SD = 0.10
SIZE_LOG_SD = 0.02
SEX_VOLUME_RATIO = 1.04
DEFORMATION_SD_MM = 2.0
# Ages are drawn log-uniformly in (age + AGE_SAMPLING_OFFSET): dense early sampling, as in NIH-PD Objective 2.
AGE_SAMPLING_OFFSET = 0.5
_TEMPLATE_RESOLUTION_MM = 2.0
_SIGMOID_WIDTH = 0.06
_FOV_CENTRE_MNI = np.array([0.0, -18.0, 10.0])
_SKULL_INTENSITY = 0.06
_SCALP_INTENSITY = 0.85
_ADULT_WM_SHARE = 0.40
_DISPLACEMENT_CONTROL_SHAPE = (7, 8, 7)


@dataclasses.dataclass(frozen=True)
class Site:
    """Acquisition protocol of one synthetic site.

    Attributes:
        name: Site label written to participants.tsv.
        field_strength: Nominal field strength in tesla (documentation only).
        orientation: Three-letter axis code of the voxel axes (nibabel convention, e.g. "LIA").
        voxel_size: Voxel size in mm along the voxel axes.
        fov_mm: Field of view in mm along world axes (left-right, posterior-anterior, inferior-superior).
        grey: Adult grey-matter intensity relative to adult white matter (= 1); lower contrast is closer to 1.
        csf: CSF intensity relative to adult white matter.
        noise: Rician noise sd relative to adult white matter.
        bias: Amplitude of the multiplicative bias field (log units).
        bias_centre_bright: True for the centre-bright pattern typical of 3 T, False for a coil gradient.
        gain: Scanner units per unit of white-matter intensity.
        slope: NIfTI scl_slope of the stored integers.
    """

    name: str
    field_strength: float
    orientation: str
    voxel_size: tuple[float, float, float]
    fov_mm: tuple[float, float, float]
    grey: float
    csf: float
    noise: float
    bias: float
    bias_centre_bright: bool
    gain: float
    slope: float


SITES: dict[str, tuple[Site, ...]] = {
    "discovery": (
        Site("disc-a", 1.5, "RAS", (1.0, 1.0, 3.0), (180.0, 216.0, 156.0), 0.72, 0.32, 0.035, 0.10, False, 900.0, 0.5),
        Site("disc-b", 1.5, "LAS", (0.9375, 0.9375, 3.0), (180.0, 210.0, 162.0), 0.70, 0.30, 0.040, 0.12, False, 1100.0, 0.4),
        Site("disc-c", 1.5, "RAS", (1.0, 1.0, 1.5), (176.0, 216.0, 168.0), 0.68, 0.28, 0.030, 0.08, False, 800.0, 0.5),
        Site("disc-d", 1.5, "ASR", (1.0, 1.0, 1.5), (168.0, 220.0, 176.0), 0.70, 0.30, 0.035, 0.10, False, 1000.0, 0.5),
    ),
    "replication": (
        Site("rep-a", 3.0, "LIA", (1.0, 1.0, 1.0), (168.0, 208.0, 176.0), 0.58, 0.15, 0.020, 0.18, True, 1400.0, 0.25),
        Site("rep-b", 3.0, "LPS", (1.0, 1.0, 1.0), (172.0, 212.0, 172.0), 0.60, 0.17, 0.025, 0.15, True, 1600.0, 0.25),
    ),
}


def relative_brain_volume(age: np.ndarray | float) -> np.ndarray | float:
    """Brain tissue (GM + WM) volume relative to the adult template at a developmental age.

    0.33 at birth, 0.72 at 1 y, 0.83 at 2 y, 0.93 at 6 y, 0.98 at 12 y, plateau after.

    Args:
        age: Developmental age in years.

    Returns:
        Volume fraction of the adult template brain.
    """
    age = np.asarray(age, dtype=float)
    return 1.0 - 0.47 * np.exp(-age / 0.7) - 0.2 * np.exp(-age / 5.5)


def white_matter_share(age: np.ndarray | float) -> np.ndarray | float:
    """White-matter share of brain tissue volume: 0.27 at birth, 0.37 at 10 y, 0.41 at 20 y.

    Args:
        age: Developmental age in years.

    Returns:
        WM / (GM + WM).
    """
    age = np.asarray(age, dtype=float)
    return 0.27 + 0.16 * (1.0 - np.exp(-age / 10.0))


def ventricle_volume_factor(age: np.ndarray | float) -> np.ndarray | float:
    """Ventricular volume relative to the template's, before whole-brain scaling (slow enlargement).

    Args:
        age: Developmental age in years.

    Returns:
        0.75 at birth rising linearly by 0.0125 per year.
    """
    return 0.75 + 0.0125 * np.asarray(age, dtype=float)


def myelination(age: np.ndarray | float) -> np.ndarray | float:
    """Maturity of white-matter T1 signal, 0 (newborn) to 1 (adult).

    A Hill curve (half-maturity at 1.1 years, exponent 3) drives the infant contrast inversion;
    a slow exponential tail (time constant 6 y) keeps contrast maturing through childhood.

    Args:
        age: Developmental age in years.

    Returns:
        Maturity in [0, 1].
    """
    age = np.maximum(np.asarray(age, dtype=float), 1e-6)
    return 0.85 / (1.0 + (1.1 / age) ** 3) + 0.15 * (1.0 - np.exp(-age / 6.0))


def white_grey_ratio(age: np.ndarray | float, grey: float) -> np.ndarray | float:
    """T1 white/grey intensity ratio: 0.75 at birth, 1 at 9-12 months, adult 1/grey.

    Args:
        age: Developmental age in years.
        grey: Adult grey intensity relative to adult white matter at the site.

    Returns:
        White-matter intensity divided by grey-matter intensity.
    """
    return 0.75 + (1.0 / grey - 0.75) * myelination(age)


@dataclasses.dataclass(frozen=True)
class TemplateModel:
    """Template-space tissue maps (2 mm MNI grid) and the lookup tables of the age effects.

    Attributes:
        affine: Voxel-to-MNI affine of the 2 mm grid.
        tissue: GM + WM probability.
        csf: CSF probability, ventricles and extra-axial shell included.
        ventricles: Ventricular part of ``csf``.
        wm_smooth: Smoothed WM probability whose level sets move the GM/WM boundary.
        ventricles_smooth: Smoothed ventricle map whose level sets move the ventricle wall.
        skull: Skull probability.
        scalp: Scalp probability.
        wm_levels, wm_shares: Level of ``wm_smooth`` -> resulting WM share of tissue (decreasing).
        ventricle_levels, ventricle_factors: Level of ``ventricles_smooth`` -> volume / template volume.
        centre_voxel: Brain centre in voxel coordinates, the fixed point of growth.
    """

    affine: np.ndarray
    tissue: np.ndarray
    csf: np.ndarray
    ventricles: np.ndarray
    wm_smooth: np.ndarray
    ventricles_smooth: np.ndarray
    skull: np.ndarray
    scalp: np.ndarray
    wm_levels: np.ndarray
    wm_shares: np.ndarray
    ventricle_levels: np.ndarray
    ventricle_factors: np.ndarray
    centre_voxel: np.ndarray


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _shell(distance: np.ndarray, inner: float, outer: float) -> np.ndarray:
    """Soft indicator of inner < distance <= outer with ~1 mm edges."""
    return (_sigmoid((distance - inner) / 0.6) - _sigmoid((distance - outer) / 0.6)).astype(np.float32)


def load_template_model() -> TemplateModel:
    """Build the template model from nilearn's bundled MNI152 2009a maps (no download).

    Returns:
        The model shared by every synthetic subject.
    """
    from nilearn import datasets

    resolution = int(_TEMPLATE_RESOLUTION_MM)
    grey_img = datasets.load_mni152_gm_template(resolution=resolution)
    grey = np.clip(grey_img.get_fdata(dtype=np.float32), 0, 1)
    white = np.clip(datasets.load_mni152_wm_template(resolution=resolution).get_fdata(dtype=np.float32), 0, 1)
    mask = datasets.load_mni152_brain_mask(resolution=resolution).get_fdata(dtype=np.float32) > 0.5
    affine = grey_img.affine.copy()
    voxel_mm = _TEMPLATE_RESOLUTION_MM

    tissue = np.minimum(grey + white, 1.0) * mask
    brain_csf = np.clip(1.0 - tissue, 0, 1) * mask
    depth_mm = ndimage.distance_transform_edt(mask) * voxel_mm
    outside_mm = ndimage.distance_transform_edt(~mask) * voxel_mm
    world = _voxel_world_coordinates(mask.shape, affine)
    # Lateral and third ventricles: deep CSF in a box around the MNI midline structures.
    central_box = (np.abs(world[0]) < 32) & (world[1] > -50) & (world[1] < 35) & (world[2] > -8) & (world[2] < 40)
    ventricles = (brain_csf * ((depth_mm > 10) & central_box)).astype(np.float32)
    csf = (brain_csf + _shell(outside_mm, 0.0, 2.5)).astype(np.float32)
    skull = _shell(outside_mm, 2.5, 8.0)
    scalp = _shell(outside_mm, 8.0, 14.0)

    wm_smooth = ndimage.gaussian_filter(white, 1.0).astype(np.float32)
    ventricles_smooth = ndimage.gaussian_filter(ventricles, 1.0).astype(np.float32)
    wm_levels = np.linspace(0.05, 0.95, 91)
    tissue_total = float(tissue.sum())
    wm_shares = np.array(
        [float((_sigmoid((wm_smooth - level) / _SIGMOID_WIDTH) * tissue).sum()) / tissue_total for level in wm_levels]
    )
    ventricle_levels = np.linspace(0.05, 0.95, 91)
    ventricle_total = float(ventricles.sum())
    ventricle_factors = np.array(
        [float(_sigmoid((ventricles_smooth - level) / _SIGMOID_WIDTH).sum()) / ventricle_total for level in ventricle_levels]
    )
    centre_voxel = np.array(ndimage.center_of_mass(tissue))
    return TemplateModel(
        affine=affine,
        tissue=tissue.astype(np.float32),
        csf=csf,
        ventricles=ventricles,
        wm_smooth=wm_smooth,
        ventricles_smooth=ventricles_smooth,
        skull=skull,
        scalp=scalp,
        wm_levels=wm_levels,
        wm_shares=wm_shares,
        ventricle_levels=ventricle_levels,
        ventricle_factors=ventricle_factors,
        centre_voxel=centre_voxel,
    )


def _voxel_world_coordinates(shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    """World coordinates (3, *shape) of every voxel centre."""
    index = np.indices(shape, dtype=np.float32).reshape(3, -1)
    return (affine[:3, :3] @ index + affine[:3, 3:4]).reshape((3, *shape)).astype(np.float32)


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


def _anatomy_intensity(model: TemplateModel, site: Site, developmental_age: float) -> np.ndarray:
    """Template-space T1 intensity at a developmental age, before growth scaling and deformation."""
    ventricle_level = _level_for(
        float(ventricle_volume_factor(developmental_age)), model.ventricle_levels, model.ventricle_factors
    )
    ventricles = _sigmoid((model.ventricles_smooth - ventricle_level) / _SIGMOID_WIDTH)
    extra_ventricular_csf = np.clip(model.csf - model.ventricles, 0, 1)
    tissue = np.clip(model.tissue + model.ventricles - ventricles, 0, 1)
    target_share = float(white_matter_share(developmental_age)) * model.wm_shares[len(model.wm_levels) // 2] / _ADULT_WM_SHARE
    wm_level = _level_for(target_share, model.wm_levels, model.wm_shares)
    white = _sigmoid((model.wm_smooth - wm_level) / _SIGMOID_WIDTH) * tissue
    grey = tissue - white
    white_intensity = site.grey * float(white_grey_ratio(developmental_age, site.grey))
    return (
        grey * site.grey
        + white * white_intensity
        + (extra_ventricular_csf + ventricles) * site.csf
        + model.skull * _SKULL_INTENSITY
        + model.scalp * _SCALP_INTENSITY
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


def _grow_and_deform(model: TemplateModel, image: np.ndarray, traits: SubjectTraits, developmental_age: float) -> np.ndarray:
    """Scale the template-space image about the brain centre and apply the smooth deformation."""
    volume = float(relative_brain_volume(developmental_age)) * traits.size
    scale = volume ** (1.0 / 3.0) * traits.axis_stretch
    shape = image.shape
    control = ndimage.gaussian_filter(traits.displacement_control, (0, 0.7, 0.7, 0.7))
    # Separable linear interpolation of the control grid: same field as a trilinear zoom, ~10x faster.
    displacement = control
    for axis, size in enumerate(shape):
        weights = _linear_interpolation_weights(control.shape[axis + 1], size)
        displacement = np.moveaxis(np.tensordot(weights, displacement, axes=([1], [axis + 1])), 0, axis + 1)
    grid = np.indices(shape, dtype=np.float32)
    coordinates = np.empty_like(grid)
    for axis in range(3):
        centre = model.centre_voxel[axis]
        coordinates[axis] = centre + (grid[axis] - centre) / scale[axis] + displacement[axis] * scale[axis] / _TEMPLATE_RESOLUTION_MM
    return ndimage.map_coordinates(image, coordinates, order=1, mode="constant", cval=0.0)


def _bias_field(model: TemplateModel, site: Site, rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
    """Smooth multiplicative bias field over the template grid."""
    world = _voxel_world_coordinates(shape, model.affine) / 100.0
    linear = rng.normal(0.0, site.bias / 2.0, 3)
    quadratic = rng.normal(0.0, site.bias / 3.0, 3)
    radial = -site.bias if site.bias_centre_bright else 0.0
    coil_gradient = 0.0 if site.bias_centre_bright else site.bias
    log_field = coil_gradient * world[1] + radial * (world**2).sum(axis=0)
    for axis in range(3):
        log_field = log_field + linear[axis] * world[axis] + quadratic[axis] * world[axis] ** 2
    return np.exp(log_field).astype(np.float32)


def _axis_directions(orientation: str) -> np.ndarray:
    """3x3 matrix whose column k is the world unit vector of voxel axis k."""
    directions = {"R": (0, 1.0), "L": (0, -1.0), "A": (1, 1.0), "P": (1, -1.0), "S": (2, 1.0), "I": (2, -1.0)}
    matrix = np.zeros((3, 3))
    for axis, letter in enumerate(orientation):
        world_axis, sign = directions[letter]
        matrix[world_axis, axis] = sign
    return matrix


def _small_rotation(angles_rad: np.ndarray) -> np.ndarray:
    cx, cy, cz = np.cos(angles_rad)
    sx, sy, sz = np.sin(angles_rad)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def scan_affine(site: Site, rng: np.random.Generator, voxel_scale: float = 1.0) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Scanner affine (voxel -> MNI mm) and shape of one acquisition: reoriented, oblique, shifted FOV.

    Args:
        site: Acquisition site.
        rng: Random generator of this session.
        voxel_scale: Multiplies the site's voxel size (tests use 2 for speed).

    Returns:
        The 4x4 affine and the volume shape.
    """
    directions = _axis_directions(site.orientation)
    voxel_size = np.array(site.voxel_size) * voxel_scale
    world_extent = directions.T @ np.array(site.fov_mm)
    shape = tuple(int(round(abs(extent) / size)) for extent, size in zip(world_extent, voxel_size))
    rotation = _small_rotation(np.deg2rad(rng.uniform(-4.0, 4.0, 3)))
    linear = rotation @ directions @ np.diag(voxel_size)
    centre = _FOV_CENTRE_MNI + rng.normal(0.0, 5.0, 3)
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = centre - linear @ ((np.array(shape) - 1) / 2.0)
    return affine, shape


def render_scan(
    model: TemplateModel,
    traits: SubjectTraits,
    age: float,
    rng: np.random.Generator,
    voxel_scale: float = 1.0,
) -> nib.Nifti1Image:
    """Render one T1-weighted acquisition of a subject at an age.

    Args:
        model: Template model from :func:`load_template_model`.
        traits: The subject's anatomy and site.
        age: Chronological age in years.
        rng: Random generator of this session (field of view, bias field, noise).
        voxel_scale: Multiplies the site's voxel size.

    Returns:
        An int16 NIfTI image with scl_slope set and a voxel -> MNI mm affine.
    """
    site = traits.site
    developmental_age = age * traits.tempo
    image = _grow_and_deform(model, _anatomy_intensity(model, site, developmental_age), traits, developmental_age)
    image *= _bias_field(model, site, rng, image.shape)
    affine, shape = scan_affine(site, rng, voxel_scale)
    # Slice profile: thick voxels average tissue along their axis (partial volume).
    voxel_size = np.array(site.voxel_size) * voxel_scale
    world_axis_sigma = np.zeros(3)
    for axis, letter in enumerate(site.orientation):
        world_axis = "RLAPSI".index(letter) // 2
        world_axis_sigma[world_axis] = max(voxel_size[axis] - _TEMPLATE_RESOLUTION_MM, 0.0) / 2.355 / _TEMPLATE_RESOLUTION_MM
    if world_axis_sigma.any():
        image = ndimage.gaussian_filter(image, world_axis_sigma)
    to_template = np.linalg.inv(model.affine) @ affine
    signal = ndimage.affine_transform(image, to_template, output_shape=shape, order=1, mode="constant", cval=0.0)
    # Rician magnitude noise, computed in place to spare 50 MB temporaries per 1 mm scan.
    noise = rng.standard_normal((2, *shape), dtype=np.float32)
    noise *= site.noise
    noise[0] += signal
    np.square(noise, out=noise)
    magnitude = np.sqrt(noise[0] + noise[1], out=noise[0])
    magnitude *= site.gain / site.slope
    np.rint(magnitude, out=magnitude)
    raw = np.clip(magnitude, 0, np.iinfo(np.int16).max).astype(np.int16)
    scan = nib.Nifti1Image(raw, affine)
    scan.header.set_slope_inter(site.slope, 0.0)
    scan.header.set_xyzt_units("mm", "sec")
    scan.header.set_qform(affine, code=1)
    scan.header.set_sform(affine, code=1)
    return scan


def write_nifti_gz(image: nib.Nifti1Image, path: Path) -> None:
    """Write a .nii.gz whose bytes depend only on the image (gzip mtime fixed to 0).

    Args:
        image: Single-file NIfTI-1 image.
        path: Destination ``.nii.gz`` path.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(image.to_bytes(), compresslevel=1, mtime=0))


def validate_arguments(n_subjects: int, min_age: float, max_age: float, profile: str, seed: int, sessions: int, workers: int | None) -> None:
    """Reject impossible cohort settings with a message naming the argument.

    Raises:
        ValueError: When an argument is out of range.
    """
    if int(n_subjects) != n_subjects or n_subjects < 1:
        raise ValueError(f"subjects must be a positive integer, got {n_subjects}")
    if not (np.isfinite(min_age) and np.isfinite(max_age)):
        raise ValueError(f"ages must be finite, got min-age {min_age}, max-age {max_age}")
    if min_age < 0:
        raise ValueError(f"min-age must be >= 0 years, got {min_age}")
    if max_age > MAX_SUPPORTED_AGE:
        raise ValueError(f"max-age must be <= {MAX_SUPPORTED_AGE} years (the trajectories end there), got {max_age}")
    if min_age > max_age:
        raise ValueError(f"min-age ({min_age}) is above max-age ({max_age})")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if sessions < 1:
        raise ValueError(f"sessions must be >= 1, got {sessions}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")


def _session_ages(rng: np.random.Generator, first_age: float, sessions: int, max_age: float) -> list[float]:
    """First visit at ``first_age``, later visits 1-3 years apart; visits past max_age are not acquired."""
    ages = [first_age]
    for _ in range(sessions - 1):
        next_age = ages[-1] + rng.uniform(1.0, 3.0)
        if next_age > max_age:
            break
        ages.append(next_age)
    return ages


@dataclasses.dataclass(frozen=True)
class _SubjectJob:
    index: int
    seed: int
    profile: str
    min_age: float
    max_age: float
    sessions: int
    out_dir: str
    voxel_scale: float


_WORKER_MODEL: TemplateModel | None = None


def _init_worker(model: TemplateModel) -> None:
    global _WORKER_MODEL
    _WORKER_MODEL = model


def _generate_subject(job: _SubjectJob) -> dict:
    """Write every session of one subject; returns its participants.tsv row."""
    model = _WORKER_MODEL
    profile_key = PROFILES.index(job.profile)
    rng = np.random.default_rng(np.random.SeedSequence(job.seed, spawn_key=(profile_key, job.index)))
    offset = AGE_SAMPLING_OFFSET
    first_age = float(np.exp(rng.uniform(np.log(job.min_age + offset), np.log(job.max_age + offset))) - offset)
    first_age = min(max(first_age, job.min_age), job.max_age)
    traits = draw_subject_traits(rng, job.profile)
    ages = _session_ages(rng, first_age, job.sessions, job.max_age)
    subject = f"sub-{job.index + 1:04d}"
    subject_dir = Path(job.out_dir) / subject
    for session_index, age in enumerate(ages):
        session_rng = np.random.default_rng(np.random.SeedSequence(job.seed, spawn_key=(profile_key, job.index, session_index, 1)))
        scan = render_scan(model, traits, age, session_rng, job.voxel_scale)
        if job.sessions > 1:
            session = f"ses-{session_index + 1}"
            path = subject_dir / session / "anat" / f"{subject}_{session}_T1w.nii.gz"
        else:
            path = subject_dir / "anat" / f"{subject}_T1w.nii.gz"
        write_nifti_gz(scan, path)
    if job.sessions > 1:
        sessions_table = pd.DataFrame(
            {"session_id": [f"ses-{i + 1}" for i in range(len(ages))], "age": [round(a, 4) for a in ages]}
        )
        sessions_table.to_csv(subject_dir / f"{subject}_sessions.tsv", sep="\t", index=False)
    return {"participant_id": subject, "age": round(first_age, 4), "sex": traits.sex, "site": traits.site.name}


def generate_cohort(
    out_dir: str | os.PathLike,
    n_subjects: int = 200,
    min_age: float = 0.0,
    max_age: float = 22.0,
    profile: str = "discovery",
    seed: int = 0,
    sessions: int = 1,
    workers: int | None = None,
    voxel_scale: float = 1.0,
    progress: bool = True,
) -> pd.DataFrame:
    """Write a synthetic BIDS cohort of T1-weighted scans.

    Each subject depends only on (seed, profile, subject index), never on the worker count.
    Workers are spawned processes, so a script calling this with workers > 1 needs the usual
    ``if __name__ == "__main__":`` guard.

    Args:
        out_dir: Dataset root (created if missing).
        n_subjects: Number of participants.
        min_age: Youngest age at the first visit, years.
        max_age: Oldest age at any visit, years.
        profile: "discovery" (1.5 T sites) or "replication" (3 T MPRAGE sites).
        seed: Cohort seed.
        sessions: Visits per subject; > 1 writes ``ses-N`` folders and ``sub-XXXX_sessions.tsv``.
        workers: Parallel processes; defaults to ``os.cpu_count()``.
        voxel_scale: Multiplies every site's voxel size; 2 makes small scans for fast tests.
        progress: Show a tqdm progress bar on stderr.

    Returns:
        The participants table (``participant_id, age, sex, site``) as written to participants.tsv.

    Raises:
        ValueError: When an argument is out of range.
    """
    from tqdm import tqdm

    validate_arguments(n_subjects, min_age, max_age, profile, seed, sessions, workers)
    if voxel_scale <= 0:
        raise ValueError(f"voxel-scale must be > 0, got {voxel_scale}")
    out_path = Path(out_dir)
    out_path.mkdir(parents=True, exist_ok=True)
    workers = min(workers or os.cpu_count() or 1, n_subjects)
    model = load_template_model()
    jobs = [
        _SubjectJob(i, int(seed), profile, float(min_age), float(max_age), int(sessions), str(out_path), float(voxel_scale))
        for i in range(int(n_subjects))
    ]
    bar = tqdm(total=len(jobs), desc=f"synthetic {profile}", unit="subject", file=sys.stderr, disable=not progress)
    if workers == 1:
        _init_worker(model)
        rows = []
        for job in jobs:
            rows.append(_generate_subject(job))
            bar.update()
    else:
        # spawn, not fork: the caller may already hold TensorFlow threads.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(model,)) as pool:
            futures = [pool.submit(_generate_subject, job) for job in jobs]
            for _ in as_completed(futures):
                bar.update()
            rows = [future.result() for future in futures]
    bar.close()
    participants = pd.DataFrame(rows, columns=["participant_id", "age", "sex", "site"])
    participants.to_csv(out_path / "participants.tsv", sep="\t", index=False)
    description = {
        "Name": f"brainage_tf synthetic developmental cohort ({profile})",
        "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "License": "CC0",
        "GeneratedBy": [
            {
                "Name": "brainage_tf.synthetic",
                "Version": __version__,
                "Description": f"profile={profile} seed={seed} subjects={n_subjects} ages={min_age}-{max_age} "
                f"sessions={sessions} voxel_scale={voxel_scale}; built from the MNI152 2009a template shipped by nilearn",
            }
        ],
    }
    (out_path / "dataset_description.json").write_text(json.dumps(description, indent=2) + "\n")
    return participants


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m brainage_tf.synthetic",
        description="Write a synthetic developmental T1w cohort as a BIDS dataset.",
    )
    parser.add_argument("--out", required=True, help="dataset root directory")
    parser.add_argument("--subjects", type=int, required=True, help="number of participants")
    parser.add_argument("--min-age", type=float, default=0.0, help="youngest first-visit age in years (default 0)")
    parser.add_argument("--max-age", type=float, default=22.0, help="oldest age in years (default 22)")
    parser.add_argument("--profile", choices=PROFILES, default="discovery", help="site profile (default discovery)")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed (default 0)")
    parser.add_argument("--sessions", type=int, default=1, help="visits per subject (default 1)")
    parser.add_argument("--workers", type=int, default=None, help="parallel processes (default: all CPUs)")
    parser.add_argument("--voxel-scale", type=float, default=1.0, help="multiply voxel sizes, e.g. 2 for quick tests")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        Process exit code.
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        validate_arguments(args.subjects, args.min_age, args.max_age, args.profile, args.seed, args.sessions, args.workers)
        if args.voxel_scale <= 0:
            raise ValueError(f"voxel-scale must be > 0, got {args.voxel_scale}")
    except ValueError as error:
        parser.error(str(error))
    participants = generate_cohort(
        args.out,
        n_subjects=args.subjects,
        min_age=args.min_age,
        max_age=args.max_age,
        profile=args.profile,
        seed=args.seed,
        sessions=args.sessions,
        workers=args.workers,
        voxel_scale=args.voxel_scale,
        progress=not args.no_progress,
    )
    print(f"wrote {len(participants)} subjects to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
