"""The ``transformers`` builder: Hub repositories of the transformers library
(``AutoModelForImageClassification``), built from their verified ``config.json``. A config
that asks for the repository's own code (``auto_map``) is refused; ``trust_remote_code`` is
never set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from securitynet.annotate.hfconfig import preprocessing_from_hf
from securitynet.errors import (
    ArchitectureMismatchError,
    UnsafeCheckpointError,
    UnsupportedEntryError,
)
from securitynet.loader.builders import BuildContext, BuiltNet, companion_ref, read_json
from securitynet.records import EntryRecord, FileRef, LoadSpec

if TYPE_CHECKING:
    import torch
    from torch import nn


def _logits_module() -> type:
    from torch import nn

    class HFLogits(nn.Module):
        """A transformers image classifier that takes a batch and returns its logits, like
        every other loaded net. The wrapped model is ``.model``."""

        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values: Any) -> Any:
            return self.model(pixel_values=pixel_values).logits

    return HFLogits


class TransformersBuilder:
    """Hub repositories of the transformers library (``AutoModelForImageClassification``)."""

    name = "transformers"

    def companion_files(self, record: EntryRecord, spec: LoadSpec) -> dict[str, FileRef]:
        files: dict[str, FileRef] = {}
        config = companion_ref(record, "config", "config.json", derive=True)
        if config is not None:
            files["config"] = config
        pre = companion_ref(record, "preprocessor", "preprocessor_config.json", derive=False)
        if pre is not None:
            files["preprocessor"] = pre
        return files

    def build(self, ctx: BuildContext) -> BuiltNet:
        import transformers
        from transformers import CONFIG_MAPPING
        from transformers.models.auto.modeling_auto import (
            MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
        )

        raw = read_json(ctx.files["config"], what=f"{ctx.record.id} config.json")
        if "auto_map" in raw:
            raise UnsafeCheckpointError(
                f"{ctx.record.id}: config.json asks for code from the repository (auto_map); "
                "securitynet never enables trust_remote_code",
                id=ctx.record.id,
            )
        model_type = raw.get("model_type")
        if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
            raise UnsupportedEntryError(f"{ctx.record.id}: unknown transformers model_type {model_type!r}")
        config = CONFIG_MAPPING[model_type].from_dict(raw)
        # Class names the library maps to image classification (a value may be a tuple).
        mapping = {k: (v,) if isinstance(v, str) else tuple(v) for k, v in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES.items()}
        known = {name for names in mapping.values() for name in names}
        arch = ctx.spec.architecture or (raw.get("architectures") or [None])[0]
        if not isinstance(arch, str) or arch not in known:
            arch = (mapping.get(model_type) or (None,))[0]
        if arch is None:
            raise UnsupportedEntryError(f"{ctx.record.id}: {model_type!r} has no image-classification class")
        cls = getattr(transformers, arch)
        defaults: dict[str, Any] = {"num_classes": getattr(config, "num_labels", None), "output": "logits"}
        id2label = getattr(config, "id2label", None) or {}
        names = [str(id2label[i]) for i in sorted(id2label)]
        if names and not all(n == f"LABEL_{i}" for i, n in enumerate(names)):
            defaults["labels"] = names
        if "preprocessor" in ctx.files:
            pre = read_json(ctx.files["preprocessor"], what=f"{ctx.record.id} preprocessor_config.json")
            defaults.update(preprocessing_from_hf(pre, channels=getattr(config, "num_channels", 3)))

        def load(tensors: Mapping[str, torch.Tensor]) -> nn.Module:
            return _load_transformers(cls, config, tensors, entry_id=ctx.record.id)

        return BuiltNet(None, defaults, load=load)


def _load_transformers(cls: Any, config: Any, tensors: Mapping[str, torch.Tensor], *, entry_id: str) -> nn.Module:
    """``cls`` with ``tensors``, through transformers' own loading: since transformers 5
    its modules name some tensors differently from the files (``encoder.layer.0.attention
    .attention.query`` is ``layers.0.attention.q_proj``), and ``from_pretrained`` with an
    explicit ``state_dict`` applies the library's renaming. No file is read and no code
    is fetched: there is no path or repository name, only the config object and tensors."""
    import torch
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model, info = cls.from_pretrained(
            None,
            config=config,
            state_dict=dict(tensors),
            output_loading_info=True,
            ignore_mismatched_sizes=True,
            local_files_only=True,
            dtype=torch.float32,
        )
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    missing = sorted(info.get("missing_keys") or ())
    unexpected = sorted(info.get("unexpected_keys") or ())
    mismatched = sorted(str(m) for m in info.get("mismatched_keys") or ())
    errors = list(info.get("error_msgs") or ())
    if missing or unexpected or mismatched or errors:
        raise ArchitectureMismatchError(
            f"{entry_id}: tensors do not fit {cls.__name__} ({len(missing)} missing, {len(unexpected)} "
            f"unexpected, {len(mismatched)} with other shapes){_names(missing, unexpected, mismatched)}",
            missing=missing,
            unexpected=unexpected,
            mismatched=mismatched,
        )
    return _logits_module()(model)


def _names(missing: list[str], unexpected: list[str], mismatched: list[str]) -> str:
    parts = [f"{label}: {', '.join(names[:5])}" for label, names in
             (("missing", missing), ("unexpected", unexpected), ("mismatched", mismatched)) if names]
    return "; " + "; ".join(parts) if parts else ""
