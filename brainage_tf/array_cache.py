"""Arrays that are costly to build and the same in every process, kept on disk between processes.

Every process that preprocesses a scan needs the MNI152 template and brain mask
on the model grid: each Beam worker at ingest, and each `predict` or `explain`
run. Building them imports nilearn, reads the 1 mm template and resamples it. With
the saved arrays, the first scan of a fresh process took 0.14 s instead of 2.93 s
(`python benchmarks/ingest_build.py --breakdown`). The arrays are saved as `.npz`, so
a reload is exact to the bit. The file name holds a digest of everything they depend
on, so a changed grid or a new nilearn version makes a new file instead of reusing a
stale one.

The folder is `$BRAINAGE_TF_CACHE_DIR`, else `$XDG_CACHE_HOME/brainage_tf`, else
`~/.cache/brainage_tf`. Setting `BRAINAGE_TF_CACHE_DIR` to an empty string turns the
cache off. A folder that cannot be written, or a corrupt file, only costs the
rebuild.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

CACHE_DIR_ENV = "BRAINAGE_TF_CACHE_DIR"
# Bump when the arrays of an unchanged key would be built differently.
CACHE_FORMAT = 1


def cache_dir() -> Path | None:
    """The cache folder, or None when `BRAINAGE_TF_CACHE_DIR` is set to an empty string."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured is not None:
        return Path(configured) if configured else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "brainage_tf"


def cache_key(name: str, *parts: object) -> str:
    """A file stem: `name` and a digest of `parts` (numpy arrays by their bytes, others by repr)."""
    digest = hashlib.sha256(repr(CACHE_FORMAT).encode())
    for part in parts:
        data = np.ascontiguousarray(part).tobytes() if isinstance(part, np.ndarray) else repr(part).encode()
        digest.update(len(data).to_bytes(8, "little") + data)
    return f"{name}-{digest.hexdigest()[:16]}"


def cached_arrays(key: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays saved under `key`, or `build()`'s, which are then saved for the next process.

    Args:
        key: File stem from `cache_key`.
        build: Makes the arrays when no readable file exists.

    Returns:
        Name -> array, equal to the bit to what `build()` returned.
    """
    folder = cache_dir()
    path = folder / f"{key}.npz" if folder is not None else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as saved:
                return {name: saved[name] for name in saved.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            pass  # a corrupt or truncated file is rebuilt and replaced
    arrays = build()
    if path is not None:
        _save(path, arrays)
    return arrays


def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Writes atomically (a temporary file, then a rename), so concurrent workers never read half a file."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz.tmp", delete=False) as handle:
            temporary = handle.name
            np.savez(handle, **arrays)
        os.replace(temporary, path)
    except OSError:  # read-only home or full disk: the next process builds the arrays again
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
