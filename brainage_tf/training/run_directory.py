"""The run directory: every file a training run leaves, and who may write it.

```
runs/slice_lstm_20261125-171500/
  config.json       TrainConfig, written once when the run starts
  history.csv       one row per epoch: epoch, train_mae, val_mae, learning_rate, seconds
  results.json      the closing figures of the last session
  best_model.keras  the selected model: best validation MAE, or the final epoch without validation
  checkpoints/      model, optimizer and epoch counter of the last epochs (resume)
  tensorboard/      scalars per epoch
```

Only the chief writes the shared files. Under MultiWorkerMirroredStrategy every
worker must still save checkpoints, so a non-chief worker keeps them in its own
sibling directory `<run_dir>-<type><id>`, which also lets it resume.
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path

from brainage_tf.errors import UsageError
from brainage_tf.training.config import TrainConfig
from brainage_tf.training.distribute import WorkerRole

HISTORY_FIELDS = ("epoch", "train_mae", "val_mae", "learning_rate", "seconds")
# A run's models: best_model.keras (the selected epoch) or the last epoch's checkpoint.
CHECKPOINTS = ("best", "last")
LISTING = "config.json, history.csv, results.json, best_model.keras, checkpoints/, tensorboard/"


class RunDirectory:
    """One worker's view of a run directory.

    Example:
        >>> run = RunDirectory(Path("runs/demo"))
        >>> run.best_model_path
        PosixPath('runs/demo/best_model.keras')
    """

    def __init__(self, path: Path, role: WorkerRole | None = None):
        """Creates the view; nothing is written until a write method runs.

        Args:
            path: The run directory the user named (the chief's).
            role: This process's cluster role (None: a single process); a non-chief worker gets a
                sibling directory.
        """
        self.role = role = role or WorkerRole()
        self.path = (
            Path(path)
            if role.is_chief
            else Path(path).with_name(f"{Path(path).name}-{role.task_type}{role.task_id}")
        )
        self._tensorboard_writer = None

    @staticmethod
    def default_path(model: str) -> Path:
        """A fresh `runs/<model>_<UTC time>` path under the working directory."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        candidate = Path("runs") / f"{model}_{stamp}"
        suffix = 1
        while candidate.exists():
            candidate = Path("runs") / f"{model}_{stamp}_{suffix}"
            suffix += 1
        return candidate

    def checkpoint_file(self, name: str, checkpoint: str) -> Path:
        """A per-checkpoint file of the run: `name` for best, `<stem>-last.<ext>` for last.

        Example:
            >>> RunDirectory(Path("runs/demo")).checkpoint_file("calibration.json", "last")
            PosixPath('runs/demo/calibration-last.json')
        """
        stem, _, extension = name.rpartition(".")
        return self.path / (name if checkpoint == "best" else f"{stem}-{checkpoint}.{extension}")

    config_path = property(lambda self: self.path / "config.json")
    history_path = property(lambda self: self.path / "history.csv")
    results_path = property(lambda self: self.path / "results.json")
    best_model_path = property(lambda self: self.path / "best_model.keras")
    checkpoint_dir = property(lambda self: self.path / "checkpoints")
    tensorboard_dir = property(lambda self: self.path / "tensorboard")

    def check_new(self) -> None:
        """Raises UsageError when the directory exists and is not empty: runs never overwrite."""
        if self.path.exists() and any(self.path.iterdir()):
            raise UsageError(
                f"run directory {self.path} exists and is not empty; choose another --out "
                "or pass --resume to continue it."
            )

    def read_config(self) -> TrainConfig:
        """The config of the run to resume.

        Raises:
            UsageError: The directory has no readable config.json.
        """
        if not self.config_path.is_file():
            raise UsageError(
                f"{self.path} has no config.json: not a run directory, so nothing to resume or evaluate."
            )
        try:
            return TrainConfig.from_json(json.loads(self.config_path.read_text()))
        except (json.JSONDecodeError, TypeError) as error:
            raise UsageError(f"{self.config_path}: unreadable config ({error}).") from None

    def start(self, config: TrainConfig, resume: bool) -> None:
        """Creates the directory; a new run also records its config (every worker, for resume)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not resume:
            self.config_path.write_text(json.dumps(config.to_json(), indent=2) + "\n")

    def record_epoch(
        self, epoch: int, train_mae: float, val_mae: float, learning_rate: float, seconds: float
    ) -> None:
        """Appends the epoch to history.csv and TensorBoard (chief only)."""
        if not self.role.is_chief:
            return
        new_file = not self.history_path.exists()
        with self.history_path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=HISTORY_FIELDS)
            if new_file:
                writer.writeheader()
            writer.writerow(
                dict(
                    epoch=epoch,
                    train_mae=f"{train_mae:.6f}",
                    val_mae="" if math.isnan(val_mae) else f"{val_mae:.6f}",
                    learning_rate=f"{learning_rate:.6g}",
                    seconds=f"{seconds:.1f}",
                )
            )
        scalars = dict(train_mae=train_mae, learning_rate=learning_rate)
        if not math.isnan(val_mae):
            scalars["val_mae"] = val_mae
        self._write_scalars(epoch, scalars)

    def read_history(self) -> list[dict[str, str]]:
        """The rows of history.csv ([] before the first epoch)."""
        if not self.history_path.exists():
            return []
        with self.history_path.open() as handle:
            return list(csv.DictReader(handle))

    def save_model(self, model) -> None:
        """Saves the selected model as best_model.keras (chief only)."""
        if self.role.is_chief:
            model.save(self.best_model_path)

    def write_results(self, results: dict) -> None:
        """Writes results.json (chief only)."""
        if self.role.is_chief:
            self.results_path.write_text(json.dumps(results, indent=2) + "\n")

    def _write_scalars(self, step: int, scalars: dict[str, float]) -> None:
        """Writes the epoch's scalars with tf.summary, which TensorBoard's scalars dashboard reads."""
        import tensorflow as tf

        if self._tensorboard_writer is None:
            self._tensorboard_writer = tf.summary.create_file_writer(str(self.tensorboard_dir))
        with self._tensorboard_writer.as_default(step=step):
            for tag, value in scalars.items():
                tf.summary.scalar(tag, value)
        self._tensorboard_writer.flush()
