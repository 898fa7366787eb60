"""Write a synthetic cohort as a BIDS dataset, one subject per job, in parallel processes.

Each subject depends only on (seed, profile, subject index), never on the worker count, and
files are written with a fixed gzip mtime, so the same seed gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd

from brainage_tf import __version__
from brainage_tf.defaults import MAX_AGE_YEARS, MIN_AGE_YEARS
from brainage_tf.synthetic.anatomy import TemplateAnatomy, load_template_anatomy
from brainage_tf.synthetic.rendering import SubjectTraits, draw_subject_traits, render_scan, write_nifti_gz
from brainage_tf.synthetic.sampling import (
    AGE_DISTRIBUTIONS,
    DEFAULT_AGE_DISTRIBUTION,
    draw_first_visit,
    later_visits,
    nihpd_arms,
)
from brainage_tf.synthetic.sites import PROFILES
from brainage_tf.synthetic.trajectories import MAX_SUPPORTED_AGE


def validate_arguments(
    n_subjects: int,
    min_age: float,
    max_age: float,
    profile: str,
    seed: int,
    sessions: int,
    workers: int | None,
    voxel_scale: float = 1.0,
    age_distribution: str = DEFAULT_AGE_DISTRIBUTION,
) -> None:
    """Reject impossible cohort settings with a message naming the argument.

    Args:
        n_subjects: Number of participants.
        min_age: Youngest age at the first visit, years.
        max_age: Oldest age at any visit, years.
        profile: Site profile name.
        seed: Cohort seed.
        sessions: Visits per subject.
        workers: Parallel processes, or None for all CPUs.
        voxel_scale: Factor on every site's voxel size.
        age_distribution: One of AGE_DISTRIBUTIONS (see brainage_tf.synthetic.sampling).

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
        raise ValueError(
            f"max-age must be <= {MAX_SUPPORTED_AGE} years (the trajectories end there), got {max_age}"
        )
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
    if voxel_scale <= 0:
        raise ValueError(f"voxel-scale must be > 0, got {voxel_scale}")
    if age_distribution not in AGE_DISTRIBUTIONS:
        raise ValueError(
            f"age-distribution must be one of {', '.join(AGE_DISTRIBUTIONS)}, got {age_distribution!r}"
        )
    if age_distribution == "nihpd":
        nihpd_arms(min_age, max_age)


@dataclasses.dataclass(frozen=True)
class _SubjectJob:
    """Everything one worker needs to write one subject (picklable)."""

    index: int
    seed: int
    profile: str
    min_age: float
    max_age: float
    sessions: int
    out_dir: str
    voxel_scale: float
    age_distribution: str = DEFAULT_AGE_DISTRIBUTION


# Set once per worker process so the template is pickled once per worker, not once per subject.
_WORKER_ANATOMY: TemplateAnatomy | None = None


def _init_worker(anatomy: TemplateAnatomy) -> None:
    global _WORKER_ANATOMY
    _WORKER_ANATOMY = anatomy


def _subject_plan(job: _SubjectJob) -> tuple[SubjectTraits, list[float]]:
    """One subject's traits and visit ages: cheap, and the same draws whether or not scans are rendered."""
    profile_key = PROFILES.index(job.profile)
    rng = np.random.default_rng(np.random.SeedSequence(job.seed, spawn_key=(profile_key, job.index)))
    first_age, gap, last_age = draw_first_visit(rng, job.age_distribution, job.min_age, job.max_age)
    traits = draw_subject_traits(rng, job.profile)
    return traits, later_visits(rng, first_age, job.sessions, gap, last_age)


def _generate_subject(job: _SubjectJob) -> dict:
    """Write every session of one subject; returns its participants.tsv row."""
    anatomy = _WORKER_ANATOMY
    profile_key = PROFILES.index(job.profile)
    traits, ages = _subject_plan(job)
    first_age = ages[0]
    subject = f"sub-{job.index + 1:04d}"
    subject_dir = Path(job.out_dir) / subject
    for session_index, age in enumerate(ages):
        session_rng = np.random.default_rng(
            np.random.SeedSequence(job.seed, spawn_key=(profile_key, job.index, session_index, 1))
        )
        scan = render_scan(anatomy, traits, age, session_rng, job.voxel_scale)
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
    return {
        "participant_id": subject,
        "age": round(first_age, 4),
        "sex": traits.sex,
        "site": traits.site.name,
    }


def plan_visits(
    n_subjects: int = 200,
    min_age: float = MIN_AGE_YEARS,
    max_age: float = MAX_AGE_YEARS,
    profile: str = "discovery",
    seed: int = 0,
    sessions: int = 1,
    age_distribution: str = DEFAULT_AGE_DISTRIBUTION,
) -> pd.DataFrame:
    """The visits `generate_cohort` would write with these arguments, without rendering a scan.

    It makes the same draws as the generator, so a cohort's age groups can be counted in
    milliseconds before minutes are spent on rendering.

    Returns:
        One row per visit: ``participant_id, session`` (1-based) ``, age`` (years, unrounded).

    Raises:
        ValueError: When an argument is out of range.
    """
    validate_arguments(n_subjects, min_age, max_age, profile, seed, sessions, None, 1.0, age_distribution)
    rows = [
        (f"sub-{job.index + 1:04d}", session + 1, age)
        for job in _jobs(n_subjects, min_age, max_age, profile, seed, sessions, "", 1.0, age_distribution)
        for session, age in enumerate(_subject_plan(job)[1])
    ]
    return pd.DataFrame(rows, columns=["participant_id", "session", "age"])


def _jobs(
    n_subjects, min_age, max_age, profile, seed, sessions, out_dir, voxel_scale, age_distribution
) -> list[_SubjectJob]:
    """One job per subject, with every argument in its canonical type."""
    return [
        _SubjectJob(
            i,
            int(seed),
            profile,
            float(min_age),
            float(max_age),
            int(sessions),
            str(out_dir),
            float(voxel_scale),
            age_distribution,
        )
        for i in range(int(n_subjects))
    ]


def generate_cohort(
    out_dir: str | os.PathLike,
    n_subjects: int = 200,
    min_age: float = MIN_AGE_YEARS,
    max_age: float = MAX_AGE_YEARS,
    profile: str = "discovery",
    seed: int = 0,
    sessions: int = 1,
    workers: int | None = None,
    voxel_scale: float = 1.0,
    progress: bool = True,
    age_distribution: str = DEFAULT_AGE_DISTRIBUTION,
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
        age_distribution: "log_uniform" (default) or "nihpd" (an NIH-PD-shaped infant arm and
            school-age arm; see brainage_tf.synthetic.sampling and docs/synthetic.md).

    Returns:
        The participants table (``participant_id, age, sex, site``) as written to participants.tsv.

    Raises:
        ValueError: When an argument is out of range.
    """
    from tqdm import tqdm

    validate_arguments(
        n_subjects, min_age, max_age, profile, seed, sessions, workers, voxel_scale, age_distribution
    )
    out_path = Path(out_dir)
    out_path.mkdir(parents=True, exist_ok=True)
    workers = min(workers or os.cpu_count() or 1, n_subjects)
    anatomy = load_template_anatomy()
    jobs = _jobs(
        n_subjects, min_age, max_age, profile, seed, sessions, out_path, voxel_scale, age_distribution
    )
    bar = tqdm(
        total=len(jobs), desc=f"synthetic {profile}", unit="subject", file=sys.stderr, disable=not progress
    )
    if workers == 1:
        _init_worker(anatomy)
        rows = []
        for job in jobs:
            rows.append(_generate_subject(job))
            bar.update()
    else:
        # spawn, not fork: the caller may already hold TensorFlow threads.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(anatomy,)
        ) as pool:
            futures = [pool.submit(_generate_subject, job) for job in jobs]
            for _ in as_completed(futures):
                bar.update()
            rows = [future.result() for future in futures]
    bar.close()
    participants = pd.DataFrame(rows, columns=["participant_id", "age", "sex", "site"])
    participants.to_csv(out_path / "participants.tsv", sep="\t", index=False)
    # Named only when not the default, so earlier cohorts keep their exact bytes.
    distribution = (
        "" if age_distribution == DEFAULT_AGE_DISTRIBUTION else f" age_distribution={age_distribution}"
    )
    description = {
        "Name": f"brainage_tf synthetic developmental cohort ({profile})",
        "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "License": "CC0",
        "GeneratedBy": [
            {
                "Name": "brainage_tf.synthetic",
                "Version": __version__,
                "Description": f"profile={profile} seed={seed} subjects={n_subjects} "
                f"ages={min_age}-{max_age} "
                f"sessions={sessions} voxel_scale={voxel_scale}{distribution}; "
                "built from the MNI152 2009a template shipped by nilearn",
            }
        ],
    }
    (out_path / "dataset_description.json").write_text(json.dumps(description, indent=2) + "\n")
    return participants
