"""The typed errors of a scan that cannot be preprocessed, one class per problem.

Each names the file and the problem in one line, and pickles across Beam and
multiprocessing workers. `brainage_tf.preprocessing` re-exports them.
"""

from __future__ import annotations

import os


def one_line(error: object) -> str:
    """An error message on one line, as every bad-input message of the package is printed."""
    return " ".join(str(error).split())


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
