"""Affine registration to MNI152: a known perturbation of the template is undone."""

import nibabel as nib
import numpy as np
from nibabel.affines import apply_affine, from_matvec
from nibabel.eulerangles import euler2mat

from brainage_tf.registration import mni152_images, register_to_template
from brainage_tf.synthetic.anatomy import load_template_anatomy
from brainage_tf.synthetic.rendering import draw_subject_traits, render_scan


def _brain_points_mm() -> np.ndarray:
    """Every 50th voxel of the template brain mask, in MNI millimetres."""
    _, mask = mni152_images()
    return apply_affine(mask.affine, np.argwhere(np.asarray(mask.dataobj) > 0.5)[::50])


def test_affine_perturbed_template_registers_back_within_two_millimetres():
    template, _ = mni152_images()
    perturbation = from_matvec(euler2mat(0.17, -0.1, 0.12) @ np.diag([0.9, 1.05, 0.95]), [12.0, -8.0, 15.0])
    moved = nib.Nifti1Image(np.asarray(template.dataobj), perturbation @ template.affine)

    registered = register_to_template(moved)

    truth = _brain_points_mm()
    voxels = apply_affine(np.linalg.inv(template.affine), truth)
    recovered = apply_affine(registered.affine, voxels)
    unregistered = apply_affine(moved.affine, voxels)
    error_mm = np.linalg.norm(recovered - truth, axis=1)
    assert np.linalg.norm(unregistered - truth, axis=1).mean() > 15.0
    assert error_mm.mean() < 2.0, f"mean registration error {error_mm.mean():.2f} mm"


def test_a_toddler_head_registers_the_same_in_another_pose():
    """A pose of `benchmarks/registration_accuracy.py` that the 2 y head failed in version 1 (15 mm apart)."""
    rng = np.random.default_rng([20261204, 1])
    head = render_scan(load_template_anatomy(), draw_subject_traits(rng, "discovery"), 2.0, rng, 1.0)
    pose = np.array(
        [[0.9248, 0.3144, 0.2118, 13.1156], [-0.2788, 0.9098, 0.3076, -4.0275],
         [-0.1393, -0.2507, 1.0903, -10.0717], [0.0, 0.0, 0.0, 1.0]]
    )  # fmt: skip
    data = np.asarray(head.dataobj)

    def world_to_template(affine: np.ndarray) -> np.ndarray:
        canonical = nib.as_closest_canonical(nib.Nifti1Image(data, affine))
        return register_to_template(canonical).affine @ np.linalg.inv(canonical.affine)

    reference = world_to_template(head.affine)
    moved = world_to_template(pose @ head.affine)
    # A brain point at world w of the unposed head sits at pose @ w in the posed one.
    points = apply_affine(np.linalg.inv(reference), _brain_points_mm())
    error_mm = np.linalg.norm(apply_affine(moved @ pose, points) - apply_affine(reference, points), axis=1)
    assert error_mm.max() < 1.0, f"the two poses register {error_mm.max():.2f} mm apart"
