"""Fine-tuning: a run that starts from a trained model's weights, its encoder fixed if asked.

The parent is a run directory (config.json and best_model.keras) or an export version
folder (`RUN_DIR/export/<v>/`: a SavedModel whose `assets/brainage_metadata.json` names
the model and its config fields, and which tracks the weights in `model.variables`
order). Either way the child takes the parent's architecture (the model and the fields
its `ModelSpec.config_fields` name) and trains on data preprocessed as the parent's
were. The weights are loaded when a run starts (also when a resume finds no checkpoint
and starts over), never on a resume proper: the checkpoint holds them from then on.

Light at import (no TensorFlow): the flags read a parent's architecture before any
heavy work; loading its weights imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from brainage_tf.errors import PreprocessingRecordError, UnknownModelError, UsageError
from brainage_tf.model_registry import get_model_spec
from brainage_tf.preprocessing_record import check_record, record_differences
from brainage_tf.serving.metadata import read_metadata, version_folders
from brainage_tf.training.config import TrainConfig
from brainage_tf.training.run_directory import RunDirectory

if TYPE_CHECKING:  # brainage_tf.data imports TensorFlow; the flags import this module
    from brainage_tf.data import ExampleSource


@dataclasses.dataclass(frozen=True)
class Parent:
    """A trained model to start from, as its run or export records it.

    Attributes:
        path: Its folder, absolute.
        kind: "run" (a run directory) or "export" (an export version folder).
        architecture: The model name under "model" and the config fields of its spec.
        preprocessing: Its training data's preprocessing record (None: in-memory data).
    """

    path: Path
    kind: str
    architecture: dict[str, Any]
    preprocessing: dict | None


def read_parent(path: str | os.PathLike) -> Parent:
    """Reads what a parent records of its architecture and data, without loading its weights.

    Raises:
        UsageError: Neither a run directory nor an export version folder, a model this
            package has not registered, or an export without one of its model's fields.
    """
    path = Path(path).absolute()
    if (path / "config.json").is_file():
        config = RunDirectory(path).read_config()
        model, recorded, kind, preprocessing = config.model, config.to_json(), "run", config.preprocessing
    elif (path / "saved_model.pb").is_file():
        recorded = read_metadata(path)
        model, kind, preprocessing = recorded.get("model"), "export", recorded.get("preprocessing")
    else:
        versions = version_folders(path)
        hint = f"; pass one version, e.g. {versions[-1][1]}" if versions else ""
        raise UsageError(
            f"--init-from {path}: neither a run directory (config.json) nor an export version folder "
            f"(saved_model.pb){hint}."
        )
    try:
        fields = get_model_spec(model).config_fields
    except UnknownModelError as error:
        raise UsageError(f"--init-from {path}: {error}") from None
    missing = [field for field in fields if recorded.get(field) is None]
    if missing:
        raise UsageError(f"--init-from {path}: it does not record {', '.join(missing)} of its {model} model.")
    architecture = {"model": model, **{field: _normal(recorded[field]) for field in fields}}
    return Parent(path, kind, architecture, preprocessing)


def _normal(value: Any) -> Any:
    """A recorded value as TrainConfig holds it (JSON lists are tuples there)."""
    return tuple(value) if isinstance(value, list) else value


def _shown(value: Any) -> str:
    """A value as its flag is typed (`--slice-size 50 50`)."""
    return " ".join(str(part) for part in value) if isinstance(value, tuple) else str(value)


def check_architecture(values: Mapping[str, Any], parent: Parent) -> None:
    """Refuses any architecture value that differs from the parent's, naming its flag.

    Args:
        values: Field name -> value, e.g. the flags given explicitly or a whole config's.
        parent: The parent.

    Raises:
        UsageError: One line: the flag, its value, the parent's and the parent's path.
    """
    for name, expected in parent.architecture.items():
        if name in values and _normal(values[name]) != expected:
            raise UsageError(
                f"--{name.replace('_', '-')} {_shown(_normal(values[name]))} contradicts the parent's "
                f"{_shown(expected)} ({parent.path}): a fine-tuned model keeps its parent's architecture; "
                "leave the flag out."
            )


def inherit_architecture(
    config: TrainConfig, parent: Parent, given: Mapping[str, Any] | None = None
) -> TrainConfig:
    """The config with the parent's path and architecture; `given` values (e.g. flags) must agree with it.

    Raises:
        UsageError: A given value contradicts the parent (`check_architecture`).
    """
    check_architecture(given or {}, parent)
    return config.replace(init_from=str(parent.path), **parent.architecture)


def check_preprocessing(parent: Parent, record: dict | None, description: str) -> None:
    """Refuses training data preprocessed otherwise than the parent's; in-memory data (no record) pass.

    Raises:
        UsageError: The parent has no usable record, or the two records differ.
    """
    if record is None:
        return
    try:
        check_record(parent.preprocessing)
    except PreprocessingRecordError as error:
        raise UsageError(
            f"--init-from {parent.path}: {error}, so nothing says {description} is preprocessed as its "
            "training data were."
        ) from None
    differences = record_differences(parent.preprocessing, record)
    if differences:
        raise UsageError(
            f"{description} was preprocessed otherwise than the training data of the parent {parent.path} "
            f"(parent vs dataset: {'; '.join(differences)}); fine-tune on a dataset built with its settings."
        )


def check_parent(config: TrainConfig, source: ExampleSource) -> Parent:
    """The parent of `config.init_from`, once its architecture and the source's preprocessing fit it.

    Raises:
        UsageError: See read_parent, check_architecture and check_preprocessing.
    """
    parent = read_parent(config.init_from)
    check_architecture({name: getattr(config, name) for name in parent.architecture}, parent)
    check_preprocessing(parent, source.preprocessing, source.description)
    return parent


def parent_variables(parent: Parent) -> list[np.ndarray]:
    """Every variable of the parent's model, in `model.variables` order.

    Raises:
        UsageError: A run without best_model.keras, or an export that tracks no model variables.
    """
    if parent.kind == "run":
        import keras

        import brainage_tf.models  # noqa: F401  (registers the model classes load_model needs)

        best = RunDirectory(parent.path).best_model_path
        if not best.is_file():
            raise UsageError(
                f"--init-from {parent.path}: no best_model.keras; the run has not finished an epoch."
            )
        return [np.asarray(variable.numpy()) for variable in keras.models.load_model(best).variables]
    import tensorflow as tf

    variables = getattr(tf.saved_model.load(str(parent.path)), "model_variables", None)
    if variables is None:
        raise UsageError(f"--init-from {parent.path}: the SavedModel tracks no model_variables.")
    return [variable.numpy() for variable in variables]


def weights_fingerprint(weights: Sequence[np.ndarray]) -> str:
    """ "sha256:<hex>" over the weights in `model.weights` order: each one's dtype, shape and bytes.

    The same for a run's best_model.keras and its export of it, so a child records one
    fingerprint whichever of the two it started from.
    """
    digest = hashlib.sha256()
    for array in weights:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return f"sha256:{digest.hexdigest()}"


def assign_weights(model, variables: Sequence[np.ndarray], origin: Path) -> list[np.ndarray]:
    """Assigns the parent's variables (in `model.variables` order) to the model's weights.

    Seed-generator states, variables but not weights, are left as the model has them.

    Returns:
        The assigned arrays, in `model.weights` order.

    Raises:
        UsageError: The parent's variables do not match the model's in number or shape.
    """
    own = model.variables
    shapes = [tuple(variable.shape) for variable in own]
    if [tuple(array.shape) for array in variables] != shapes:
        raise UsageError(
            f"--init-from {origin}: its {len(variables)} variables do not match the {len(own)} of "
            f"{model.name} built for this dataset's volumes (another grid or architecture)."
        )
    weights = {id(weight) for weight in model.weights}
    assigned = []
    for variable, array in zip(own, variables, strict=True):
        if id(variable) in weights:
            variable.assign(array)
            assigned.append(array)
    return assigned


def start_from_parent(
    model, config: TrainConfig, source: ExampleSource, log: Callable[[str], None] = print
) -> TrainConfig:
    """Loads the parent's weights into a freshly built model; returns the config with the parent recorded.

    Args:
        model: The model the run just built (same architecture as the parent).
        config: The run's config, with `init_from` set.
        source: The data it trains on (its preprocessing record is None in memory).
        log: Progress printer.

    Returns:
        The config with `init_from` absolute and `init_fingerprint` the weights' fingerprint.

    Raises:
        UsageError: See check_parent and assign_weights; or a recorded fingerprint the parent's
            weights do not have any more.
    """
    parent = check_parent(config, source)
    fingerprint = weights_fingerprint(assign_weights(model, parent_variables(parent), parent.path))
    if config.init_fingerprint not in (None, fingerprint):
        raise UsageError(
            f"--init-from {parent.path}: its weights' fingerprint is {fingerprint}, not the "
            f"{config.init_fingerprint} the run recorded: the parent changed."
        )
    log(f"starting from the {parent.kind} {parent.path} (weights {fingerprint}), --freeze {config.freeze}")
    return config.replace(init_from=str(parent.path), init_fingerprint=fingerprint)


def freeze(model, config: TrainConfig) -> None:
    """Makes the layers `--freeze` names untrainable; call before the optimizer is built.

    Keras leaves them out of `model.trainable_variables`, so neither the gradient nor the
    optimizer touches them (no optimizer state is made for them either).

    Raises:
        ValueError: The registry names an encoder layer the built model lacks.
    """
    if config.freeze != "encoder":
        return
    layers = {layer.name: layer for layer in model.layers}
    for name in get_model_spec(config.model).encoder_layers:
        if name not in layers:
            raise ValueError(
                f"model {config.model}: its registered encoder layer {name!r} is not a layer of it."
            )
        layers[name].trainable = False
