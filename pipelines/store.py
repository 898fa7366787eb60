"""Fingerprints and the output store: how a component knows it has done this work before.

Every component computes the fingerprint of what it is asked to do: its name, the
package version, its parameters and the content fingerprints of its input
artifacts. Its outputs live in the store under that fingerprint:

```
<store>/<component>/<fingerprint>/        the outputs (a TFDS data dir, a run dir, ...)
<store>/<component>/<fingerprint>.json    the record, written last: the artifacts' metadata
```

A record exists only for finished work, so a component whose fingerprint has a
record reuses those outputs and runs nothing, and an interrupted or failed
component leaves no record (its partial folder is cleared on the next attempt)
while every other entry stays as it was. Because the fingerprint covers the
inputs' content, a changed parameter re-runs its component and, through the new
content fingerprint of its outputs, everything downstream of it, and nothing else.
Nothing here imports TensorFlow: a reused component starts in a second.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import brainage_tf

# Bump when the meaning of a component's outputs changes, so old entries are not reused.
STORE_LAYOUT_VERSION = 1
_CHUNK = 1 << 20


def fingerprint_of(value: Any) -> str:
    """SHA-256 of a JSON-ready value in canonical form (sorted keys, no whitespace).

    Example:
        >>> fingerprint_of({"b": 1, "a": [2]}) == fingerprint_of({"a": [2], "b": 1})
        True
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def content_fingerprint(path: str | os.PathLike) -> str:
    """SHA-256 over a file's bytes, or over every file below a folder (relative path, size, bytes).

    Raises:
        FileNotFoundError: The path does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such output to fingerprint")
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        relative = "" if file == path else file.relative_to(path).as_posix()
        digest.update(f"{relative}\0{file.stat().st_size}\0".encode())
        with file.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def work_fingerprint(component: str, parameters: Mapping[str, Any], inputs: Mapping[str, str]) -> str:
    """The fingerprint of one component's work: what it is, what it is told, what it reads.

    Args:
        component: Component name, e.g. "Trainer".
        parameters: The parameters that change its outputs (JSON-ready).
        inputs: Input name -> content fingerprint of that input artifact.
    """
    return fingerprint_of(
        {
            "component": component,
            "layout": STORE_LAYOUT_VERSION,
            "package_version": brainage_tf.__version__,
            "parameters": dict(parameters),
            "inputs": dict(inputs),
        }
    )


@dataclasses.dataclass(frozen=True)
class StoredOutput:
    """One output artifact of a component: where it is and its metadata."""

    path: Path
    metadata: dict[str, Any]


class OutputStore:
    """The folder where components keep their outputs by work fingerprint.

    Example:
        >>> store = OutputStore("store")
        >>> with store.produce("Trainer", key) as folder:  # doctest: +SKIP
        ...     train(into=folder)
        ...     store.finish("Trainer", key, {"model": ("", {"best_val_mae": 1.2})}, common)
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def folder(self, component: str, key: str) -> Path:
        """The output folder of one piece of work."""
        return self.root / component / key

    def record_path(self, component: str, key: str) -> Path:
        """The record written when that work finished."""
        return self.root / component / f"{key}.json"

    def lookup(self, component: str, key: str) -> dict[str, StoredOutput] | None:
        """The outputs of finished work with this fingerprint, or None (also when its folder is gone)."""
        record_path = self.record_path(component, key)
        if not record_path.is_file() or not self.folder(component, key).is_dir():
            return None
        record = json.loads(record_path.read_text())
        return {
            name: StoredOutput(self.folder(component, key) / output["path"], {**output["metadata"]})
            for name, output in record["outputs"].items()
        }

    def forget(self, component: str, key: str) -> None:
        """Drops the record of some work, so it is done again (its folder is cleared then)."""
        self.record_path(component, key).unlink(missing_ok=True)

    @contextlib.contextmanager
    def produce(self, component: str, key: str) -> Iterator[Path]:
        """Yields an empty output folder for new work; on failure the folder is removed.

        Entries of other work are never touched, so a failed component leaves every
        earlier output intact.
        """
        folder = self.folder(component, key)
        self.record_path(component, key).unlink(missing_ok=True)
        if folder.exists():  # left by an interrupted attempt: it has no record
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        try:
            yield folder
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def run_or_reuse(
        self,
        component: str,
        parameters: Mapping[str, Any],
        inputs: Mapping[str, str],
        work: Callable[[Path], Mapping[str, tuple[str, Mapping[str, Any]]]],
        log: Callable[[str], None] = print,
    ) -> dict[str, StoredOutput]:
        """The outputs of this work: reused when its fingerprint has a record, else made by `work`.

        Args:
            component: Component name, e.g. "Trainer".
            parameters: The parameters that change its outputs (JSON-ready).
            inputs: Input name -> content fingerprint of that input artifact.
            work: Writes the outputs into the folder it is given and returns output name ->
                (path relative to that folder, the artifact's own metadata).
            log: Progress printer.

        Returns:
            Output name -> stored output. Every output's metadata records the component, its
            parameters, its inputs' fingerprints, the work `fingerprint`, its own
            `content_fingerprint`, and whether it was `reused`.
        """
        key = work_fingerprint(component, parameters, inputs)
        found = self.lookup(component, key)
        reused = found is not None
        if reused:
            log(f"{component}: reusing {self.folder(component, key)} (same inputs and parameters)")
        else:
            common = {"component": component, "parameters": dict(parameters), "inputs": dict(inputs)}
            with self.produce(component, key) as folder:
                found = self.finish(component, key, work(folder), {**common, "fingerprint": key})
        return {
            name: StoredOutput(output.path, {**output.metadata, "reused": reused})
            for name, output in found.items()
        }

    def finish(
        self,
        component: str,
        key: str,
        outputs: Mapping[str, tuple[str, Mapping[str, Any]]],
        common: Mapping[str, Any],
    ) -> dict[str, StoredOutput]:
        """Fingerprints each output's content and writes the record that makes the work reusable.

        Args:
            component: Component name.
            key: The work fingerprint.
            outputs: Output name -> (path relative to the work folder, that artifact's own metadata).
            common: Metadata every output artifact carries (component, parameters, ...).

        Returns:
            Output name -> stored output, whose metadata holds common, its own and its
            `content_fingerprint`.
        """
        folder = self.folder(component, key)
        record = {
            name: {
                "path": relative,
                "metadata": {
                    **common,
                    **metadata,
                    "content_fingerprint": content_fingerprint(folder / relative),
                },
            }
            for name, (relative, metadata) in outputs.items()
        }
        partial = self.record_path(component, key).with_suffix(".json.partial")
        partial.write_text(json.dumps({"outputs": record}, indent=2, allow_nan=False) + "\n")
        partial.replace(self.record_path(component, key))
        return {
            name: StoredOutput(folder / output["path"], output["metadata"]) for name, output in record.items()
        }
