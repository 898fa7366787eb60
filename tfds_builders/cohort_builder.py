"""What every brainage_tf TFDS builder shares: configs, features, the Beam ingest.

A cohort builder only says where its records come from and which split each
one goes to (`_split_records`). Validation, preprocessing, skip counting and the
skip report all happen in `brainage_tf.ingest.beam.IngestScans`, the same
transform for every builder.

TFDS forbids `open` and `os` in builder modules, so files are handled with
`epath` here.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from brainage_tf.console import brief_errors_under_tfds
from brainage_tf.defaults import (
    DEVELOPMENTAL_AGE_COLUMN,
    MAX_AGE_YEARS,
    MIN_AGE_YEARS,
    STORED_VOLUME_DTYPE,
    TEMPO_COLUMN,
)
from brainage_tf.errors import BuildError, CohortError, CohortLayoutError, IngestError
from brainage_tf.ingest import INGEST_SUMMARY_NAME, SKIP_REPORT_NAME, ScanRecord
from brainage_tf.ingest.build_progress import DEFAULT_PROGRESS_SECONDS, PROGRESS_FOLDER, BuildProgress
from brainage_tf.ingest.checks import split_problem, unit_mistake, unreadable_split
from brainage_tf.preprocessing import GRID_NAMES, REGISTRATION_MODES, PreprocessConfig, get_grid
from brainage_tf.preprocessing_record import preprocessing_record
from brainage_tf.skull_strip import check_available

# The errors of a cohort a user can make by mistake: `tfds build` shows them in one line.
INPUT_ERRORS = (BuildError, CohortError, CohortLayoutError, IngestError)


class CohortConfig(tfds.core.BuilderConfig):
    """Builder config: grid, registration and skull stripping, strictness, voxel limit, ages, progress."""

    def __init__(
        self,
        *,
        grid: str,
        registration: str,
        skull_strip: str = "none",
        strict: bool = False,
        max_voxels: int | None = None,
        age_range: Sequence[float] | None = None,
        progress_seconds: float = DEFAULT_PROGRESS_SECONDS,
        **kwargs,
    ):
        """Creates the config.

        Args:
          grid: "tiny", "small" or "paper" (see brainage_tf.preprocessing.GRIDS).
          registration: "none" (scans already in MNI space) or "affine".
          skull_strip: "none", "template" or "deepbet" (`brainage_tf.skull_strip`); "deepbet" needs
            the skullstrip extra.
          strict: Fail the build on the first bad row instead of skipping it.
          max_voxels: Most voxels a scan may hold (None: `MAX_SCAN_VOXELS`); larger scans are
            skipped as `scan_too_large` before any voxel is read. It changes no example.
          age_range: (youngest, oldest) age in years of the cohort, both included (None: the
            builder's `AGE_RANGE_YEARS`); a row outside is skipped as `outside_age_range`.
          progress_seconds: Seconds between two progress lines while the scans are preprocessed;
            0 turns them off (for logs).
          **kwargs: tfds.core.BuilderConfig arguments (name, description, ...).

        Raises:
          SkullStripUnavailableError: skull_strip "deepbet" without its extra installed (one line).
          ValueError: an unknown grid, registration or skull-stripping mode, a max_voxels that is not
            positive, an age_range that is not two ages youngest first, or a negative progress_seconds.
        """
        kwargs.setdefault("description", _config_description(grid, registration, skull_strip))
        super().__init__(**kwargs)
        self.grid = grid
        self.registration = registration
        self.skull_strip = skull_strip
        self.strict = strict
        self.max_voxels = max_voxels
        self.age_range = None if age_range is None else _age_range(age_range)
        if not progress_seconds >= 0:
            raise ValueError(f"progress_seconds must be 0 (off) or more, got {progress_seconds}")
        self.progress_seconds = progress_seconds
        _ = self.preprocess_config  # built once here: a bad setting fails now, not on the Beam workers
        check_available(skull_strip)

    @property
    def preprocess_config(self) -> PreprocessConfig:
        """The PreprocessConfig every scan of this config goes through."""
        limit = {} if self.max_voxels is None else {"max_voxels": self.max_voxels}
        return PreprocessConfig(
            grid=self.grid, registration=self.registration, skull_strip=self.skull_strip, **limit
        )


def _age_range(age_range: Sequence[float]) -> tuple[float, float]:
    """The (youngest, oldest) pair of a config's age_range, checked."""
    ages = tuple(float(age) for age in age_range)
    if len(ages) != 2 or not 0 <= ages[0] < ages[1]:
        raise ValueError(
            f"age_range must be [youngest, oldest] in years, 0 <= youngest < oldest, got {age_range}"
        )
    return ages


def _config_description(grid: str, registration: str, skull_strip: str = "none") -> str:
    mode = (
        "affine registration to MNI152" if registration == "affine" else "no registration (MNI-space input)"
    )
    stripped = "" if skull_strip == "none" else f"; skull stripping {skull_strip}"
    return f"{get_grid(grid).describe()}; {mode}{stripped}."


def config_name(grid: str, registration: str) -> str:
    """ "small" for registration none, "small_affine" for affine."""
    return grid if registration == "none" else f"{grid}_{registration}"


def make_configs(
    config_cls: type[CohortConfig] = CohortConfig,
    registrations: Sequence[str] = REGISTRATION_MODES,
    **kwargs,
) -> list[CohortConfig]:
    """The configs tiny, small, paper, then tiny_affine, small_affine, paper_affine.

    Args:
      config_cls: CohortConfig or a subclass.
      registrations: Registration modes to make configs for.
      **kwargs: Extra arguments for every config.

    Returns:
      The configs, registration "none" first.
    """
    return [
        config_cls(name=config_name(grid, registration), grid=grid, registration=registration, **kwargs)
        for registration in registrations
        for grid in GRID_NAMES
    ]


def manual_dir_layouts(example_scan: str) -> str:
    """The three `--manual_dir` layouts every real-cohort builder accepts, for its instructions.

    Args:
      example_scan: A release-layout scan path to show, e.g. `t1/nihpd_1001_V2_t1w.mnc`.

    Returns:
      Indented text for MANUAL_DOWNLOAD_INSTRUCTIONS.
    """
    return f"""
    1. The release: `demographics.csv` (or `.tsv`) with columns
       `subject_id, visit, age_days` (or `age_months`, `age_years`; the column
       name states the unit) and optionally `sex` (M/F), `site`; plus the T1w
       scans (MINC `.mnc`, NIfTI `.nii`/`.nii.gz` or MGZ) anywhere below it,
       named so that `<subject_id>_<visit>` appears as whole tokens, e.g.
       `{example_scan}`.
    2. A BIDS folder: `participants.tsv` (participant_id, age in years, sex,
       site), `sub-*/[ses-*/]anat/*_T1w.nii.gz`, and for longitudinal data
       `sub-*/sub-*_sessions.tsv` (session_id, age).
    3. A manifest `manifest.csv` or `manifest.tsv` with columns
       `subject_id, age, path[, session, sex, site]`; `age` is in years, or
       name the column `age_months` / `age_days`, or add an `age_unit` column.
       Relative paths are resolved against the manifest's folder.
"""


class CohortBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the cohort builders; subclasses implement `_split_records`."""

    # A new version makes `tfds build` and `ensure_prepared` rebuild datasets that older versions prepared.
    VERSION = tfds.core.Version("1.2.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release.",
        "1.1.0": "The prepared dataset records its preprocessing settings in metadata.json.",
        "1.2.0": "Features `tempo` and `developmental_age`: the ground truth a cohort lists (NaN otherwise).",
    }
    BUILDER_CONFIGS = make_configs()
    DEFAULT_BUILDER_CONFIG_NAME = "small"
    SPLIT_NAMES: Sequence[str] = ()
    HOMEPAGE = ""
    # The ages of the builder's cohort in years, both included; a JSON config's age_range overrides it.
    AGE_RANGE_YEARS: tuple[float, float] = (MIN_AGE_YEARS, MAX_AGE_YEARS)

    def _info(self) -> tfds.core.DatasetInfo:
        grid = get_grid(self.builder_config.grid)
        metadata = self.get_metadata()
        description = (
            f"{(metadata.description or '').strip()}\n\n"
            f"Volumes: {grid.describe()}. Registration: {self.builder_config.registration}."
        )
        return tfds.core.DatasetInfo(
            builder=self,
            description=description,
            citation=metadata.citation,
            homepage=self.HOMEPAGE or None,
            features=tfds.features.FeaturesDict(
                {
                    "volume": tfds.features.Tensor(
                        shape=grid.shape,
                        dtype=np.dtype(STORED_VOLUME_DTYPE),
                        encoding=tfds.features.Encoding.ZLIB,
                    ),
                    "age": tfds.features.Scalar(dtype=np.float32, doc="Age at scan in years."),
                    "sex": tfds.features.Text(doc="M, F or n/a."),
                    "site": tfds.features.Text(doc="Acquisition site, empty when unknown."),
                    "subject_id": tfds.features.Text(),
                    "session": tfds.features.Text(doc="Session or visit, empty when cross-sectional."),
                    "source_path": tfds.features.Text(doc="Scan path relative to the cohort folder."),
                    "registration_ncc": tfds.features.Scalar(
                        dtype=np.float32,
                        doc="Normalised cross-correlation with the MNI152 template in its brain mask.",
                    ),
                    TEMPO_COLUMN: tfds.features.Scalar(
                        dtype=np.float32,
                        doc="Developmental tempo of the subject (synthetic ground truth); NaN when unknown.",
                    ),
                    DEVELOPMENTAL_AGE_COLUMN: tfds.features.Scalar(
                        dtype=np.float32,
                        doc="Age the scan's anatomy shows, years (age x tempo); NaN when unknown.",
                    ),
                }
            ),
            supervised_keys=("volume", "age"),
            # Written as metadata.json in the prepared folder and restored when the dataset is read from
            # its files, so training and export take the settings from the data, never from a name.
            metadata=tfds.core.MetadataDict(
                preprocessing=preprocessing_record(self.builder_config.preprocess_config)
            ),
        )

    def age_range(self, cohort: str) -> tuple[float, float]:
        """(youngest, oldest) age in years of `cohort`: the config's age_range, else `AGE_RANGE_YEARS`."""
        return self.builder_config.age_range or self.AGE_RANGE_YEARS

    @abc.abstractmethod
    def _split_records(self, dl_manager: tfds.download.DownloadManager) -> list[tuple[str, ScanRecord]]:
        """Returns every record of the cohort with its split ("" if it has no usable age)."""

    def _split_generators(self, dl_manager: tfds.download.DownloadManager, pipeline):
        from brainage_tf.ingest.beam import IngestScans  # only at build time
        from brainage_tf.ingest.direct_runner import prepare_local_runner

        prepare_local_runner(pipeline)
        brief_errors_under_tfds(INPUT_ERRORS)
        records = self._split_records(dl_manager)
        self._rows_listed = len(records)  # checked against the counts after the run
        self._summary = None  # set after the run; checked against the files
        logging.info(
            "%s: %d rows read; %s",
            self.name,
            len(records),
            _config_description(
                self.builder_config.grid, self.builder_config.registration, self.builder_config.skull_strip
            ),
        )
        age_ranges = {record.cohort: self.age_range(record.cohort) for _, record in records}
        self._check_cohort(records, age_ranges, dl_manager)
        progress_folder = None
        if self.builder_config.progress_seconds:
            progress_folder = str(self.data_path / PROGRESS_FOLDER)
            self._progress = BuildProgress(
                progress_folder,
                len(records),
                self.name,
                self.builder_config.progress_seconds,
                lambda line: logging.info("%s", line),
            )
        ingested = pipeline | "IngestScans" >> IngestScans(
            records,
            self.builder_config.preprocess_config,
            split_names=self.SPLIT_NAMES,
            skip_report_path=str(self.data_path / SKIP_REPORT_NAME),
            strict=self.builder_config.strict,
            age_ranges=age_ranges,
            progress_folder=progress_folder,
        )
        if progress_folder is not None:
            self._progress.start()  # the pipeline runs as soon as this returns
        return {split: self._generate_examples(ingested=ingested, split=split) for split in self.SPLIT_NAMES}

    def _check_cohort(self, records: list[tuple[str, ScanRecord]], age_ranges: dict, dl_manager) -> None:
        """Stops the build, before any scan is preprocessed, on a mistake of the cohort as a whole.

        Raises:
          CohortError: Ages in another unit than stated, a split too small, or none of a split's scans opens.
        """
        problem = unit_mistake([record for _, record in records], age_ranges)  # names its table
        if problem is None:
            problem = split_problem(records, self.SPLIT_NAMES, age_ranges) or unreadable_split(
                records, self.SPLIT_NAMES, age_ranges, self.builder_config.preprocess_config.max_voxels
            )
            if problem is not None and self.MANUAL_DOWNLOAD_INSTRUCTIONS:
                problem = f"{dl_manager.manual_dir}: {problem}"
        if problem is not None:
            raise CohortError(f"{self.name}: {problem}")

    def _stop_progress(self) -> None:
        progress = getattr(self, "_progress", None)
        if progress is not None:
            progress.stop()

    def _generate_examples(self, ingested, split: str):
        """Selects one split's (key, example) PCollection from the shared ingest."""
        return ingested[split]

    def _download_and_prepare(self, dl_manager, download_config) -> None:
        """TFDS's build on the named Beam runner (else the local one), then a check of the files.

        The check (the files hold every example the ingest wrote) raises inside TFDS's
        incomplete folder, so a build with lost examples is never kept.
        """
        from brainage_tf.ingest.direct_runner import with_default_runner

        try:
            super()._download_and_prepare(dl_manager, with_default_runner(download_config))
        finally:
            self._stop_progress()  # a failed run too leaves no thread behind
        stored = {name: split.num_examples for name, split in self.info.splits.items()}
        summary = getattr(self, "_summary", None)  # None when TFDS generated nothing
        problem = summary.storage_problem(stored) if summary else None
        if problem is not None:
            raise IngestError(
                f"{self.name}: {problem}; the Beam runner lost them, so the build stopped "
                "(docs/ingest.md, 'Examples lost'); rebuild it"
            )

    def _process_pipeline_result(self, pipeline_result) -> None:
        from brainage_tf.ingest.beam import summarize

        self._stop_progress()  # its last line, and its folder gone before TFDS finalizes the dataset
        summary = self._summary = summarize(pipeline_result)
        problem = summary.accounting_problem(self._rows_listed)
        if problem is not None:  # raised before TFDS finalizes: no dataset with lost rows is kept
            raise IngestError(
                f"{self.name}: {problem}; the Beam runner lost them, so the build stopped "
                "(docs/ingest.md, 'Examples lost'); rebuild it"
            )
        summary.write(self.data_path / INGEST_SUMMARY_NAME)
        if summary.skipped:
            logging.warning(
                "%s: %d rows skipped (%s); see %s in the prepared dataset folder",
                self.name,
                summary.skipped,
                ", ".join(f"{reason}: {count}" for reason, count in summary.skipped_by_reason.items()),
                summary.skip_report,
            )
        logging.info("%s", summary.line())
