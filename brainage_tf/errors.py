"""Every error class of brainage_tf, its builders and its pipelines, in one module.

A newcomer finds here what the package can raise on bad input, and a caller catches
one import away. Every message names the file or flag and the problem in one line
(`one_line`); the commands print it without a traceback. The module imports nothing
heavy, so the light modules (flags, readers, the synthetic generator) can raise these.

The typed `ScanError`s, one class per problem, pickle across Beam and
multiprocessing workers.
"""

from __future__ import annotations

import os


def one_line(error: object) -> str:
    """An error message on one line, as every bad-input message of the package is printed."""
    return " ".join(str(error).split())


class UsageError(ValueError):
    """A flag, run directory or dataset choice that cannot work; reported before heavy work."""


class SkullStripUnavailableError(UsageError):
    """The learned skull stripping was asked for, and its optional extra is not installed."""


class UnknownModelError(ValueError):
    """A model name that no spec is registered under (brainage_tf.model_registry)."""


class DatasetError(ValueError):
    """A dataset is missing, unprepared, or selects no examples."""


class PreprocessingRecordError(ValueError):
    """A preprocessing record that is missing, incomplete, or of another preprocessing version."""


class CohortLayoutError(ValueError):
    """A cohort folder or table that cannot be read as any supported layout."""


class IngestError(ValueError):
    """A bad row in strict mode, or an inconsistent ingest request."""


class CohortError(ValueError):
    """A cohort that cannot make the dataset as a whole, found before any scan is preprocessed.

    Ages that read as another unit than the table states, a split left empty or too small for
    what it is for, a split none of whose scans opens (`brainage_tf.ingest.checks`).
    """


class IngestSummaryError(ValueError):
    """An ingest summary file that is missing, not JSON, or lacks a field."""


class BuildError(ValueError):
    """A TFDS builder, config or Beam option that cannot build (`tfds_builders.prepare`)."""


class ComponentError(RuntimeError):
    """A pipeline component that cannot do its work (`pipelines`)."""


class JobFailedError(RuntimeError):
    """A distributed job (`predict --runner`) failed; the message says what finished and where it is kept."""


class ScanError(ValueError):
    """A scan that cannot be preprocessed. ``str()`` reads ``"<path>: <reason>"``."""

    def __init__(self, path: str | os.PathLike | None, reason: str):
        self.path = str(path) if path is not None else "<in-memory image>"
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):
        # Beam and multiprocessing pickle exceptions across processes.
        return (type(self), (self.path, self.reason))


class UnreadableScanError(ScanError):
    """Missing file, unknown format, corrupt header or truncated gzip."""


class NotSingleVolumeError(ScanError):
    """Not one 3D volume: a 4D series with several volumes, or a 2D image."""


class NonFiniteVoxelsError(ScanError):
    """NaN or infinite voxel values."""


class ConstantImageError(ScanError):
    """Every voxel has the same value, or the brain region holds no signal."""


class RegistrationError(ScanError):
    """SimpleITK could not register the scan to the MNI152 template."""


class DegenerateAffineError(ScanError):
    """Voxel-to-world affine that is non-finite or not invertible."""


class VoxelSizeError(ScanError):
    """A voxel edge outside the range a brain MRI can have."""


class ScanTooLargeError(ScanError):
    """A header that declares more voxels than the limit (`PreprocessConfig.max_voxels`)."""


class ImplausibleBrainMaskError(ScanError):
    """A learned brain mask whose volume no child's brain has, or that holds no more signal than noise."""
