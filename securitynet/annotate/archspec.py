"""Declarative architecture specs: a small net written as data in a curated file.

Security research trains small custom nets (MNIST CNNs, surrogates) whose architecture
lives only in someone's training script. Curators read that script once and write the net
as a short layer list, each layer bound by ``name`` to the state-dict prefix of its
tensors, plus what the net outputs (attacks need to know whether they get logits or
probabilities)::

    architecture_spec:
      input_size: [1, 28, 28]
      output: log-probabilities
      layers:
        - {op: conv2d, name: conv1, in_channels: 1, out_channels: 6, kernel_size: 3, padding: 1}
        - {op: relu}
        - {op: max_pool2d, kernel_size: 2}
        - {op: flatten}
        - {op: linear, name: fc1, in_features: 400, out_features: 120}
        - {op: log_softmax, dim: 1}

The spec is validated here (and by ``schema/archspec.schema.json``) without torch; the
loader's ``state-dict`` builder (:mod:`securitynet.loader.layernet`) checks each layer's
arguments against the torch constructor and builds it. Nothing from the repository runs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from securitynet.loader.layernet import LAYER_OPS, WEIGHTED_OPS

#: What a spec may say the net returns -> ``LoadSpec.output``.
OUTPUT_KINDS: dict[str, str] = {
    "logits": "logits",
    "probabilities": "softmax",
    "log-probabilities": "log_softmax",
}
#: The final layer each output kind implies (``logits``: none of these).
_FINAL_OP = {"softmax": "probabilities", "log_softmax": "log-probabilities"}

_PART = r"([A-Za-z_][A-Za-z0-9_]*|[0-9]+)"
_NAME_PATTERN = rf"^{_PART}(\.{_PART})*$"
_SCALAR = {"type": ["integer", "number", "boolean", "string"]}
#: A layer argument: a plain value or a list of them (kernel_size: [3, 3]).
_ARG_SCHEMA: dict[str, Any] = {"anyOf": [_SCALAR, {"type": "array", "items": _SCALAR}]}


class LayerSpec(BaseModel):
    """One layer: a torch.nn op, its state-dict prefix, and the constructor's arguments."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": _ARG_SCHEMA})

    op: Literal[tuple(LAYER_OPS)]  # type: ignore[valid-type]
    name: str | None = Field(
        default=None,
        pattern=_NAME_PATTERN,
        description="State-dict prefix of the layer's tensors (dotted for nesting: features.0).",
    )

    @model_validator(mode="after")
    def _check(self) -> LayerSpec:
        if self.op in WEIGHTED_OPS and self.name is None:
            raise ValueError(f"a {self.op} layer has tensors: give its state-dict 'name'")
        for key, value in (self.model_extra or {}).items():
            items = value if isinstance(value, list) else [value]
            if not all(isinstance(v, (int, float, bool, str)) for v in items):
                raise ValueError(f"{self.op}: argument {key!r} must be a number, string, boolean or a list of them")
        return self

    def as_layer(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op}
        if self.name is not None:
            out["name"] = self.name
        out.update(self.model_extra or {})
        return out


class ArchSpec(BaseModel):
    """A net as an ordered layer list bound to state-dict keys, and what it outputs."""

    model_config = ConfigDict(extra="forbid")

    output: Literal["logits", "probabilities", "log-probabilities"] = Field(
        description="What the net returns: attacks read probabilities from it accordingly."
    )
    input_size: tuple[int, int, int] | None = Field(default=None, description="C, H, W of one input.")
    layers: list[LayerSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> ArchSpec:
        names = [layer.name for layer in self.layers if layer.name is not None]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"layer names used twice: {repeated}")
        last = self.layers[-1].op
        implied = _FINAL_OP.get(last, "logits")
        if implied != self.output:
            raise ValueError(
                f"the last layer is {last!r}, so the net returns {implied}, not {self.output}"
            )
        return self

    def load_fields(self) -> dict[str, Any]:
        """The ``LoadSpec`` fields that build this net with the ``state-dict`` builder."""
        fields: dict[str, Any] = {
            "builder": "state-dict",
            "architecture": "sequential",
            "kwargs": {"layers": [layer.as_layer() for layer in self.layers]},
            "output": OUTPUT_KINDS[self.output],
        }
        if self.input_size is not None:
            fields["input_size"] = list(self.input_size)
        return fields

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Tensor name -> shape the spec implies (built on torch's meta device)."""
        import torch

        from securitynet.loader.layernet import build_layer_net

        with torch.device("meta"):
            net = build_layer_net(self.load_fields()["kwargs"]["layers"])
        return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def archspec_json_schema() -> dict[str, Any]:
    """JSON Schema of an architecture spec (written to ``schema/archspec.schema.json``)."""
    return ArchSpec.model_json_schema()
