"""Synthetic developmental cohort: BIDS datasets of T1-weighted NIfTI scans of children aged 0-22 years.

Every scan is built from the MNI152 template that nilearn ships (nothing is downloaded), with
documented developmental effects (growth, myelination contrast, tissue trajectories, individual
tempo) and site and scanner effects, so the whole pipeline runs without access-controlled data.
docs/synthetic.md gives the curves, the literature behind them and what the tests measure.

Modules: ``trajectories`` (developmental curves), ``sites`` (site profiles and scanner geometry),
``anatomy`` (the template anatomy), ``exterior`` (each site's head outside the brain),
``sampling`` (visit ages), ``spec`` (``CohortSpec``, what a cohort is), ``rendering`` (one
subject's scan at one age), ``cohort`` (the BIDS writer) and ``__main__`` (the command line,
``python -m brainage_tf.synthetic``).
"""

from brainage_tf.synthetic.anatomy import TemplateAnatomy, load_template_anatomy
from brainage_tf.synthetic.cohort import generate_cohort, plan_visits, true_brain_mask_path
from brainage_tf.synthetic.exterior import EXTERIOR_OPTIONS, VARIED_EXTERIORS, Exterior
from brainage_tf.synthetic.rendering import (
    SubjectTraits,
    draw_subject_traits,
    render_scan,
    render_scan_with_mask,
    write_nifti_gz,
)
from brainage_tf.synthetic.sampling import AGE_DISTRIBUTIONS
from brainage_tf.synthetic.sites import PROFILES, SITES, Site, scan_affine
from brainage_tf.synthetic.spec import CohortSpec
from brainage_tf.synthetic.trajectories import (
    MAX_SUPPORTED_AGE,
    myelination,
    relative_brain_volume,
    ventricle_volume_factor,
    white_grey_ratio,
    white_matter_share,
)

__all__ = [
    "AGE_DISTRIBUTIONS",
    "CohortSpec",
    "EXTERIOR_OPTIONS",
    "Exterior",
    "MAX_SUPPORTED_AGE",
    "PROFILES",
    "SITES",
    "Site",
    "SubjectTraits",
    "TemplateAnatomy",
    "VARIED_EXTERIORS",
    "draw_subject_traits",
    "generate_cohort",
    "load_template_anatomy",
    "myelination",
    "plan_visits",
    "relative_brain_volume",
    "render_scan",
    "render_scan_with_mask",
    "scan_affine",
    "true_brain_mask_path",
    "ventricle_volume_factor",
    "white_grey_ratio",
    "white_matter_share",
    "write_nifti_gz",
]
