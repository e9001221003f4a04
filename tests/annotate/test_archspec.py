"""Declarative architecture specs: validated without torch, checked against the JSON
Schema in schema/, and built by the loader's state-dict builder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from securitynet.annotate.archspec import ArchSpec
from securitynet.annotate.overrides import load_annotations
from securitynet.errors import UnsupportedEntryError
from securitynet.loader.layernet import build_layer_net

ROOT = Path(__file__).resolve().parents[2]

LENET: dict[str, Any] = {
    "input_size": [1, 28, 28],
    "output": "log-probabilities",
    "layers": [
        {"op": "conv2d", "name": "conv1", "in_channels": 1, "out_channels": 6, "kernel_size": 3, "padding": 1},
        {"op": "relu"},
        {"op": "max_pool2d", "kernel_size": 2},
        {"op": "flatten"},
        {"op": "linear", "name": "fc.0", "in_features": 1176, "out_features": 10},
        {"op": "log_softmax", "dim": 1},
    ],
}


def _with(**changes: Any) -> dict[str, Any]:
    return {**json.loads(json.dumps(LENET)), **changes}


def test_a_spec_becomes_a_state_dict_load_spec_with_its_output_kind() -> None:
    spec = ArchSpec.model_validate(LENET)
    fields = spec.load_fields()
    assert fields["builder"] == "state-dict" and fields["output"] == "log_softmax"
    assert fields["input_size"] == [1, 28, 28]
    assert spec.parameter_shapes() == {
        "conv1.weight": (6, 1, 3, 3),
        "conv1.bias": (6,),
        "fc.0.weight": (10, 1176),
        "fc.0.bias": (10,),
    }
    import torch

    net = build_layer_net(fields["kwargs"]["layers"])
    out = net(torch.zeros(2, 1, 28, 28))
    assert out.shape == (2, 10) and torch.allclose(out.exp().sum(1), torch.ones(2))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (_with(output="logits"), "returns log-probabilities, not logits"),
        (_with(output="probabilities"), "not probabilities"),
        (_with(layers=[{"op": "linear", "in_features": 4, "out_features": 2}]), "give its state-dict 'name'"),
        (_with(layers=[{"op": "conv3d", "name": "c"}]), "conv3d"),
        (_with(layers=[{"op": "relu", "name": "a"}, {"op": "relu", "name": "a"}]), "used twice"),
        (_with(layers=[{"op": "relu", "name": "a b"}]), "pattern"),
        (_with(layers=[{"op": "dropout", "p": {"x": 1}}]), "must be a number"),
        (_with(layers=[]), "at least 1"),
    ],
)
def test_a_malformed_spec_is_refused_with_the_reason(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ArchSpec.model_validate(spec)


def test_the_json_schema_accepts_and_refuses_what_the_model_does() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "schema/archspec.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(LENET, schema)
    for bad in (_with(output="scores"), _with(layers=[{"op": "exec", "name": "x"}]), _with(extra=1),
                _with(layers=[{"op": "relu", "name": "a/b"}])):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_a_spec_argument_torch_does_not_take_is_refused_when_built() -> None:
    layers = ArchSpec.model_validate(_with(output="logits", layers=[{"op": "relu", "bogus": 1}])).load_fields()
    with pytest.raises(UnsupportedEntryError, match="bogus"):
        build_layer_net(layers["kwargs"]["layers"])


def test_every_curated_spec_builds_and_its_input_reaches_the_head() -> None:
    """Each shipped spec builds on the meta device, and a zero input of its declared size
    runs through it to one score per class: the layer list is complete and consistent."""
    import torch

    specs = [
        (ann.source, item.id, item.architecture_spec)
        for ann in load_annotations()
        for item in ann.content.items
        if item.architecture_spec is not None
    ]
    assert len(specs) >= 6
    for source, eid, spec in specs:
        net = build_layer_net(spec.load_fields()["kwargs"]["layers"])
        assert spec.input_size is not None
        out = net.eval()(torch.zeros(1, *spec.input_size))
        assert out.shape == (1, 10), (source, eid)
        raw = yaml.safe_load((ROOT / "annotations" / source.removeprefix("curated:")).read_text())
        assert raw["annotator"]
