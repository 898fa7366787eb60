"""Error and time of affine registration against known affines: `python benchmarks/registration_accuracy.py`.

Heads: the MNI152 template (int16, as a scanner writes it) and synthetic heads at 1 mm
of several ages (`brainage_tf.synthetic`; the infants' grey/white contrast is
inverted), every one in MNI space to start with. Each is moved by `--cases` random
affines (rotations up to 15 degrees about each axis, translations up to 20 mm,
scalings 0.85-1.15, shears up to 0.1) and registered back with `register_to_template`
on one core. The error of one registration is the displacement, in mm, of the 8
corners of the template brain's bounding box between where the registration of the
moved head puts them and where the registration of the unmoved head does: a
registration must not depend on the head's pose. (A child's head is smaller than the
template, so its own registration rescales it: the unmoved head's registration, not
the identity, is the truth.) A failure is a corner off by more than `FAILURE_MM`, or a
registration error. The same draws (fixed seed) every run, so two
runs on two versions of the code compare case by case.

Prints one row per head (mean and maximum corner error, failures, median seconds)
and one for all. The MNI152 template row's seconds are those of a 1 mm 197x233x189 scan;
`benchmarks/run.py` runs this script in its own process (`--json`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import nibabel as nib
import numpy as np
from nibabel.affines import apply_affine, from_matvec
from nibabel.eulerangles import euler2mat

# Ages of the synthetic heads: an infant (inverted contrast), a toddler, a child, an adult.
HEAD_AGES = (0.4, 2.0, 9.0, 19.0)
FAILURE_MM = 10.0
MAX_ROTATION_DEGREES = 15.0
MAX_TRANSLATION_MM = 20.0
SCALING_RANGE = (0.85, 1.15)
MAX_SHEAR = 0.1
SEED = 20261204


def random_affine(rng: np.random.Generator) -> np.ndarray:
    """A world-space affine about the origin (MNI's centre) of the benchmark's ranges."""
    angles = np.radians(rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES, 3))
    shear = np.eye(3)
    shear[np.triu_indices(3, 1)] = rng.uniform(-MAX_SHEAR, MAX_SHEAR, 3)
    linear = euler2mat(*angles) @ np.diag(rng.uniform(*SCALING_RANGE, 3)) @ shear
    return from_matvec(linear, rng.uniform(-MAX_TRANSLATION_MM, MAX_TRANSLATION_MM, 3))


def brain_box_corners() -> np.ndarray:
    """The 8 corners of the template brain mask's bounding box, in MNI millimetres."""
    from brainage_tf.registration import mni152_images

    _, mask = mni152_images()
    voxels = np.argwhere(np.asarray(mask.dataobj) > 0.5)
    low, high = voxels.min(axis=0), voxels.max(axis=0)
    corners = np.array(list(itertools.product(*zip(low, high, strict=True))), dtype=float)
    return apply_affine(mask.affine, corners)


def heads() -> dict[str, nib.Nifti1Image]:
    """Name -> a head in MNI space: the template, then synthetic heads of HEAD_AGES at 1 mm."""
    from brainage_tf.registration import mni152_images
    from brainage_tf.synthetic.anatomy import load_template_anatomy
    from brainage_tf.synthetic.rendering import draw_subject_traits, render_scan

    template, _ = mni152_images()
    scaled = np.round(np.asarray(template.dataobj) * 1000).astype(np.int16)
    found = {"MNI152 template": nib.Nifti1Image(scaled, template.affine)}
    anatomy = load_template_anatomy()
    for index, age in enumerate(HEAD_AGES):
        rng = np.random.default_rng([SEED, index])
        scan = render_scan(anatomy, draw_subject_traits(rng, "discovery"), age, rng, 1.0)
        found[f"synthetic {age:g} y"] = scan
    return found


def world_to_template(head: nib.Nifti1Image) -> np.ndarray:
    """The world-to-MNI map `register_to_template` finds for a head (as preprocessing uses it)."""
    from brainage_tf.registration import register_to_template

    canonical = nib.as_closest_canonical(head)
    return register_to_template(canonical).affine @ np.linalg.inv(canonical.affine)


def corner_errors(reference: np.ndarray, moved: np.ndarray, perturbation: np.ndarray) -> np.ndarray:
    """Per corner, mm between the moved and the unmoved head's registration of the same point.

    A point at world `w` of the unmoved head sits at `perturbation @ w` after the move.
    """
    corners = apply_affine(np.linalg.inv(reference), brain_box_corners())  # the head's own world
    return np.linalg.norm(
        apply_affine(moved @ perturbation, corners) - apply_affine(reference, corners), axis=1
    )


def measure(cases: int) -> list[dict]:
    """One row per head and one for all: corner error mean and max (mm), failures, median seconds."""
    import SimpleITK as sitk

    from brainage_tf.errors import RegistrationError

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    rng = np.random.default_rng(SEED)
    rows, every_error, every_second, every_failure = [], [], [], 0
    for name, head in heads().items():
        errors, seconds, failures = [], [], 0
        data = np.asarray(head.dataobj)
        reference = world_to_template(head)
        for _ in range(cases):
            perturbation = random_affine(rng)
            started = time.perf_counter()
            try:
                moved = world_to_template(nib.Nifti1Image(data, perturbation @ head.affine))
            except RegistrationError:
                failures += 1
                continue
            finally:
                seconds.append(time.perf_counter() - started)
            error = corner_errors(reference, moved, perturbation)
            failures += int(error.max() > FAILURE_MM)
            errors.extend(error)
        rows.append(_row(name, errors, failures, seconds, head.shape))
        every_error += errors
        every_second += seconds
        every_failure += failures
    rows.append(_row("all", every_error, every_failure, every_second, None))
    return rows


def _row(name: str, errors: list, failures: int, seconds: list, shape) -> dict:
    mean, worst = (float(np.mean(errors)), float(np.max(errors))) if errors else (None, None)
    return dict(
        head=name, shape=shape, mean_mm=mean, max_mm=worst, failures=failures,
        median_s=statistics.median(seconds), cases=len(seconds),
    )  # fmt: skip


def print_table(rows: list[dict]) -> None:
    """The rows as a Markdown table."""
    print(f"{rows[0]['cases']} random affines per head, one core; corner error of the brain's bounding box\n")
    print("| head | mean mm | max mm | failures | median s |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        mean, worst = (f"{row[key]:.2f}" if row[key] is not None else "n/a" for key in ("mean_mm", "max_mm"))
        print(f"| {row['head']} | {mean} | {worst} | {row['failures']} | {row['median_s']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=4, help="random affines per head")
    parser.add_argument("--json", action="store_true", help="Also print the rows as JSON on the last line.")
    args = parser.parse_args()
    rows = measure(args.cases)
    print_table(rows)
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
