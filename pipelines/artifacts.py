"""What the KFP components share: handing stored outputs to KFP artifacts, and failing clearly.

Kept free of TensorFlow and of kfp itself (artifacts are used through their `uri`,
`path` and `metadata`), so the components' reuse path and these helpers' tests stay light.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from brainage_tf.errors import ComponentError
from pipelines.store import StoredOutput

# Written beside a failed component's KFP outputs, so `python -m pipelines.run` can name the cause.
ERROR_FILE = "error.txt"


def publish(artifact, output: StoredOutput) -> None:
    """Points a KFP output artifact at a stored output and gives it that output's metadata.

    The artifact's URI becomes the store folder, so downstream components read the
    stored output in place, whether it was made now or reused.
    """
    artifact.uri = str(output.path)
    artifact.metadata.update(output.metadata)


@contextlib.contextmanager
def failure_reported(component: str, artifact) -> Iterator[None]:
    """Turns a ComponentError into one line on stderr, a note beside the task's outputs, and exit 1.

    Args:
        component: Component name for the message.
        artifact: Any output artifact of the task; its KFP folder receives `error.txt`.
    """
    try:
        yield
    except ComponentError as error:
        message = f"{component} failed: {error}"
        print(message, file=sys.stderr)
        task_folder = Path(artifact.path).parent
        task_folder.mkdir(parents=True, exist_ok=True)
        (task_folder / ERROR_FILE).write_text(message + "\n")
        raise SystemExit(1) from None
