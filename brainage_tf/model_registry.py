"""The model registry: the one place that knows each brain-age model's name, builder and contract.

A `ModelSpec` says what the rest of the package needs to know of a model without
building it: its builder, the spatial rank of the input it takes, the `TrainConfig`
fields it is built from (the ones training passes, the export records and nothing
else), what one slab is when explanation occludes its input, and which of its layers
are its encoder, the part `--freeze encoder` keeps fixed while fine-tuning. Training, flags,
the export, explanation, the paper experiment and the benchmarks ask the registry;
none of them names a model.

The module is light (no TensorFlow, no Keras): flag parsing and the explanation
command read the specs before any heavy import, so a spec is plain data and its
builder is an import path (`"module:attribute"`) resolved on the first build. That
is why the built-in specs are declared here rather than in their Keras modules, whose
import costs seconds. Models from elsewhere (a test, a study's own module) register
with `register_model`, with a builder callable or an import path; docs/architecture.md
lists the steps of adding one.

Example:
    >>> get_model_spec("resnet3d").config_fields
    ('width_multiplier',)
    >>> get_model_spec("vgg")
    Traceback (most recent call last):
    ...
    brainage_tf.model_registry.UnknownModelError: unknown model 'vgg'; choose one of slice_lstm, resnet3d.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from typing import Any

from brainage_tf.errors import UnknownModelError


@dataclasses.dataclass(frozen=True)
class Slabs:
    """What explanation occludes as one slab of a model's input: consecutive slices along an axis.

    The slab is the model's own unit when it has one, read from its config fields; a
    model without one is occluded over the default slabs (`DEFAULT_SLICE_AXIS`,
    `DEFAULT_POOL_SIZE`), so that its profile lines up with a default slice_lstm's.

    Attributes:
        axis_field: The config field holding the slab axis ("axial", "coronal" or
            "sagittal"), or None for the default axis.
        size_field: The config field holding the slices per slab, or None for the
            default size. A model with one needs it recorded in its export.
    """

    axis_field: str | None = None
    size_field: str | None = None


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything the package needs to know of a model before building it.

    Attributes:
        name: The `--model` name, also the Keras model's name and the run folder's prefix.
        builder: Callable, or its import path "module:attribute", called as
            `builder(volume_shape, precision=..., name=..., **fields)` with one keyword per
            `config_fields` entry; returns an uncompiled keras.Model from
            (batch, *volume_shape, 1) to (batch, 1) ages in years, computing under the
            Keras dtype policy `precision` with a float32 output.
        summary: One line for `--help` and the docs: what the model reads and how.
        config_fields: The `TrainConfig` fields the builder takes. Training passes only
            these, the export records only these, and only these matter to the model.
        input_rank: Spatial rank of the volume the model takes (3: x, y, z, as the
            datasets, the export signatures and explanation provide).
        slabs: What one occluded slab of its input is (`Slabs`).
        encoder_layers: Names of the built model's top-level layers that make up its
            encoder, which `--freeze encoder` keeps fixed when fine-tuning (`()`: it has
            none, and the flag is refused for it).
    """

    name: str
    builder: str | Callable[..., Any]
    summary: str
    config_fields: tuple[str, ...] = ()
    input_rank: int = 3
    slabs: Slabs = Slabs()
    encoder_layers: tuple[str, ...] = ()

    def load_builder(self) -> Callable[..., Any]:
        """The builder callable, importing its module on first use (which registers its Keras classes)."""
        if callable(self.builder):
            return self.builder
        module, _, attribute = self.builder.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def recorded_slabs(self, recorded: Mapping[str, Any]) -> tuple[str | None, int | None]:
        """The model's own slab axis and size among `recorded` config fields (None where it has none)."""
        axis = recorded.get(self.slabs.axis_field) if self.slabs.axis_field else None
        size = recorded.get(self.slabs.size_field) if self.slabs.size_field else None
        return axis, None if size is None else int(size)


_SPECS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Adds a model to the registry; every command and library module then offers it.

    Raises:
        ValueError: The name is taken, the builder path is not "module:attribute", a config
            field repeats, or a slab field is not among the config fields (it would not be
            recorded in the export, where explanation reads it).
    """
    if spec.name in _SPECS:
        raise ValueError(f"model {spec.name!r} is registered already.")
    if not callable(spec.builder) and ":" not in spec.builder:
        raise ValueError(f"model {spec.name!r}: builder {spec.builder!r} is not 'module:attribute'.")
    if len(set(spec.config_fields)) != len(spec.config_fields):
        raise ValueError(f"model {spec.name!r}: config fields {spec.config_fields} repeat.")
    for field in (spec.slabs.axis_field, spec.slabs.size_field):
        if field is not None and field not in spec.config_fields:
            raise ValueError(f"model {spec.name!r}: slab field {field!r} is not one of its config fields.")
    _SPECS[spec.name] = spec
    return spec


def get_model_spec(name: str) -> ModelSpec:
    """The spec registered under `name`.

    Raises:
        UnknownModelError: No model has that name (one line, listing the known ones).
    """
    try:
        return _SPECS[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; choose one of {', '.join(_SPECS)}.") from None


def model_names() -> tuple[str, ...]:
    """The registered names, in registration order (the `--model` choices)."""
    return tuple(_SPECS)


def model_specs() -> tuple[ModelSpec, ...]:
    """The registered specs, in registration order."""
    return tuple(_SPECS.values())


def model_fields() -> frozenset[str]:
    """Every config field some registered model is built from."""
    return frozenset(field for spec in _SPECS.values() for field in spec.config_fields)


register_model(
    ModelSpec(
        name="slice_lstm",
        builder="brainage_tf.models.slice_lstm:SliceLSTM",
        summary="2D-ResNet18+LSTM (He et al. 2020): 2D slices along --slice-axis, pooled, read by a BiLSTM",
        config_fields=("width_multiplier", "slice_axis", "slice_size", "pool_size"),
        # One LSTM step: the pooling window of `pool_size` slices along the slicing axis.
        slabs=Slabs(axis_field="slice_axis", size_field="pool_size"),
        # The 2D ResNet18 applied to every slice; the BiLSTM and the age head stay trainable.
        encoder_layers=("slice_encoder",),
    )
)
register_model(
    ModelSpec(
        name="resnet3d",
        builder="brainage_tf.models.resnet3d:ResNet3D",
        summary="3D-ResNet18 baseline: the whole volume through 3D convolutions",
        config_fields=("width_multiplier",),
        # The 3D ResNet18 backbone; the age head stays trainable.
        encoder_layers=("volume_resnet18",),
    )
)
# The paper's model: the default of every command and pipeline.
DEFAULT_MODEL = "slice_lstm"
