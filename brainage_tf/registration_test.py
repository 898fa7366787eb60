"""Affine registration to MNI152: a known perturbation of the template is undone."""

import nibabel as nib
import numpy as np
from nibabel.affines import from_matvec
from nibabel.eulerangles import euler2mat

from brainage_tf.registration import mni152_images, register_to_template


def test_affine_perturbed_template_registers_back_within_two_millimetres():
    template, mask = mni152_images()
    perturbation = from_matvec(euler2mat(0.17, -0.1, 0.12) @ np.diag([0.9, 1.05, 0.95]), [12.0, -8.0, 15.0])
    moved = nib.Nifti1Image(np.asarray(template.dataobj), perturbation @ template.affine)

    registered = register_to_template(moved)

    brain_voxels = np.argwhere(np.asarray(mask.dataobj) > 0.5)[::50]
    truth = nib.affines.apply_affine(template.affine, brain_voxels)
    recovered = nib.affines.apply_affine(registered.affine, brain_voxels)
    unregistered = nib.affines.apply_affine(moved.affine, brain_voxels)
    error_mm = np.linalg.norm(recovered - truth, axis=1)
    assert np.linalg.norm(unregistered - truth, axis=1).mean() > 15.0
    assert error_mm.mean() < 2.0, f"mean registration error {error_mm.mean():.2f} mm"
