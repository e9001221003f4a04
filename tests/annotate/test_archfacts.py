"""Architecture facts on the meta device: agreement with real nets, FLOPs, cache, failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from securitynet.annotate import archfacts
from securitynet.annotate.archfacts import (
    ArchFactsCache,
    ArchSpec,
    compute_arch_facts,
    compute_arch_facts_batch,
)
from securitynet.errors import InvalidQueryError


def _real_net(builder: str, architecture: str, **kwargs: object) -> nn.Module:
    """The same net built the ordinary way: real (random) weights on the CPU."""
    if builder == "timm":
        import timm

        return timm.create_model(architecture, pretrained=False, **kwargs)
    if builder == "torchvision":
        from torchvision import models

        return models.get_model(architecture, weights=None, **kwargs)
    from pytorchcv.model_provider import get_model

    return get_model(architecture, pretrained=False, **kwargs)


@pytest.mark.parametrize(
    ("builder", "architecture", "method"),
    [
        ("timm", "test_resnet", "meta-device"),
        ("timm", "test_vit", "meta-device"),
        ("timm", "test_efficientnet", "meta-device"),
        ("torchvision", "mobilenet_v3_small", "meta-device"),
        # RegNet computes its widths with tensors (.tolist()): only the hooks way builds it
        ("torchvision", "regnet_y_400mf", "meta-hooks"),
        ("pytorchcv", "resnet20_cifar10", "meta-device"),
        # its masks are made with torch.Tensor(...), which ignores the device context
        ("pytorchcv", "xdensenet40_2_k24_bc_cifar10", "meta-device"),
    ],
)
def test_params_on_meta_equal_a_real_instantiation(
    builder: str, architecture: str, method: str
) -> None:
    facts = compute_arch_facts(builder, architecture)
    real = _real_net(builder, architecture)
    assert facts.error is None
    assert facts.params == sum(p.numel() for p in real.parameters())
    assert facts.method == method
    assert facts.gflops is not None and facts.gflops > 0


def test_flops_of_resnet18_match_torchvision_published_macs() -> None:
    from torchvision.models import ResNet18_Weights

    facts = compute_arch_facts("torchvision", "resnet18", input_size=224)
    published_gmacs = ResNet18_Weights.IMAGENET1K_V1.meta["_ops"]  # 1.814, torchvision's "GFLOPS"
    assert facts.input_size == (3, 224, 224)
    assert facts.gmacs == pytest.approx(published_gmacs, rel=0.01)
    assert facts.gflops == pytest.approx(3.63, rel=0.01)  # FLOPs = 2 x MACs


def test_flops_on_meta_equal_flops_counted_on_a_real_forward() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    facts = compute_arch_facts("timm", "test_convnext", input_size=(3, 96, 96))
    real = _real_net("timm", "test_convnext").eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        real(torch.zeros(1, 3, 96, 96))
    assert facts.gflops == pytest.approx(counter.get_total_flops() / 1e9)


@pytest.mark.parametrize("architecture", ["test_vit", "test_efficientnet", "test_resnet"])
def test_shortcut_counter_equals_flop_counter_mode_on_meta(architecture: str) -> None:
    """Skipped in-place ops and memoised meta kernels change nothing FlopCounterMode sees."""
    import timm
    from torch.utils.flop_counter import FlopCounterMode

    facts = compute_arch_facts("timm", architecture)
    with torch.device("meta"):
        net = timm.create_model(architecture).eval().requires_grad_(False)
    assert facts.input_size is not None
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.empty(1, *facts.input_size, device="meta"))
    assert facts.gflops is not None and round(facts.gflops * 1e9) == counter.get_total_flops()


def test_timm_tag_is_stripped_and_a_fixed_size_net_is_built_at_the_requested_size() -> None:
    spec = ArchSpec.of("timm", "vit_tiny_patch16_224.augreg_in21k_ft_in1k", input_size=384)
    assert spec.architecture == "vit_tiny_patch16_224"
    at_384 = compute_arch_facts("timm", "vit_tiny_patch16_224.augreg_in21k_ft_in1k", input_size=384)
    at_224 = compute_arch_facts("timm", "vit_tiny_patch16_224", input_size=224)
    real_384 = _real_net("timm", "vit_tiny_patch16_384")  # same net, position embeddings for 384
    assert at_384.params == sum(p.numel() for p in real_384.parameters())
    assert at_384.params is not None and at_224.params is not None and at_384.params > at_224.params
    assert (
        at_384.gflops is not None
        and at_224.gflops is not None
        and at_384.gflops > 2.5 * at_224.gflops
    )


def test_num_classes_changes_the_head() -> None:
    ten = compute_arch_facts("pytorchcv", "resnet18", num_classes=10)
    thousand = compute_arch_facts("pytorchcv", "resnet18")
    assert ten.num_classes == 10 and thousand.num_classes == 1000
    assert thousand.params is not None and ten.params == thousand.params - 990 * 513


def test_second_batch_reads_the_cache_without_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[ArchSpec] = []
    measure = archfacts._measure

    def counting(spec: ArchSpec) -> archfacts.ArchFacts:
        calls.append(spec)
        return measure(spec)

    monkeypatch.setattr(archfacts, "_measure", counting)
    cache = ArchFactsCache(tmp_path)
    specs = [
        ArchSpec.of("timm", "test_resnet.r160_in1k"),
        ArchSpec.of("timm", "test_vit", num_classes=10),
    ]
    first = compute_arch_facts_batch(specs, cache=cache, progress=False)
    assert (first.computed, first.cached, len(calls)) == (2, 0, 2)

    second = compute_arch_facts_batch(
        specs, cache=ArchFactsCache(tmp_path), progress=False
    )  # fresh object: from disk
    assert (second.computed, second.cached, len(calls)) == (0, 2, 2)
    assert all(f.cached for f in second.facts.values())
    assert {s: (f.params, f.gflops) for s, f in second.facts.items()} == {
        s: (f.params, f.gflops) for s, f in first.facts.items()
    }
    (cache_file,) = tmp_path.glob("arch-facts-timm-*.json")
    assert json.loads(cache_file.read_text())["version"] == archfacts.get_builder("timm").version()

    compute_arch_facts_batch(specs, cache=cache, refresh=True, progress=False)
    assert len(calls) == 4


def test_default_cache_lives_in_the_securitynet_home(_isolated_home: Path) -> None:
    cache = ArchFactsCache.default()
    compute_arch_facts("timm", "test_resnet", cache=cache)
    assert list((_isolated_home / "cache").glob("arch-facts-timm-*.json"))


def test_a_failing_architecture_records_its_error_and_the_batch_goes_on(tmp_path: Path) -> None:
    good = ArchSpec.of("timm", "test_resnet")
    unknown = ArchSpec.of("timm", "no_such_architecture")
    # a load spec pinning ViT's image size below the input it declares: the forward pass fails
    wrong_size = ArchSpec.of("torchvision", "vit_b_16", input_size=384, kwargs={"image_size": 224})
    batch = compute_arch_facts_batch(
        [unknown, good, wrong_size], cache=ArchFactsCache(tmp_path), progress=False
    )
    assert batch.failed == 2 and batch.computed == 3
    assert batch.facts[good].ok and batch.facts[good].params
    assert batch.facts[unknown].error is not None and batch.facts[unknown].error.startswith(
        "build:"
    )
    assert "Unknown model" in batch.facts[unknown].error
    # the net was built, so its parameters are known; only the forward pass failed
    assert batch.facts[wrong_size].error is not None and batch.facts[wrong_size].error.startswith(
        "forward:"
    )
    assert batch.facts[wrong_size].params == 86567656  # torchvision's num_params of vit_b_16 at 224
    # failures are deterministic for a library version: cached, not retried
    again = compute_arch_facts_batch([unknown], cache=ArchFactsCache(tmp_path), progress=False)
    assert again.cached == 1 and again.failed == 1


def test_a_spent_budget_skips_what_is_left_and_caches_nothing(tmp_path: Path) -> None:
    specs = [ArchSpec.of("timm", "test_resnet"), ArchSpec.of("timm", "test_vit")]
    batch = compute_arch_facts_batch(
        specs, cache=ArchFactsCache(tmp_path), budget_s=0, progress=False
    )
    assert batch.skipped == specs and batch.computed == 0 and not batch.facts
    assert not list(tmp_path.glob("*.json"))


def test_specs_are_canonical() -> None:
    a = ArchSpec.of("TIMM", "resnet50.a1_in1k", input_size=224, kwargs={"b": 1, "a": 2})
    b = ArchSpec.of("timm", "resnet50.tv_in1k", input_size=(3, 224, 224), kwargs={"a": 2, "b": 1})
    assert a == b and a.key == b.key
    nested = ArchSpec.of("timm", "test_vit", kwargs={"img_size": [96, 96], "extra": {"x": 1}})
    assert {nested: 1}[nested] == 1 and nested.kwargs == {"extra": {"x": 1}, "img_size": [96, 96]}
    assert (
        ArchSpec.of("torchvision", "resnet50").key
        != ArchSpec.of("torchvision", "resnet50", num_classes=10).key
    )
    with pytest.raises(InvalidQueryError):
        ArchSpec.of("keras", "resnet50")
    with pytest.raises(InvalidQueryError):
        ArchSpec.of("timm", "resnet50", input_size=(1, 2, 3, 4))


@pytest.mark.slow
def test_a_process_pool_gives_the_same_facts_as_one_process(tmp_path: Path) -> None:
    specs = [
        ArchSpec.of("timm", n)
        for n in ("test_resnet", "test_vit", "test_efficientnet", "test_convnext")
    ]
    specs.append(ArchSpec.of("timm", "no_such_architecture"))
    serial = compute_arch_facts_batch(specs, progress=False)
    pooled = compute_arch_facts_batch(specs, workers=2, progress=False)
    assert pooled.computed == len(specs) and pooled.failed == 1
    assert {s: (f.params, f.gflops, f.error is None) for s, f in pooled.facts.items()} == {
        s: (f.params, f.gflops, f.error is None) for s, f in serial.facts.items()
    }


def test_googlenet_is_measured_as_torchvision_loads_it() -> None:
    """torchvision's googlenet(weights=...) has no auxiliary heads: 6,624,904 parameters
    (its weights' num_params), not the 13.0 M of a bare build with aux_logits=True."""
    from torchvision.models import GoogLeNet_Weights

    facts = compute_arch_facts("torchvision", "googlenet")
    assert facts.params == GoogLeNet_Weights.IMAGENET1K_V1.meta["num_params"] == 6_624_904
    assert ArchSpec.of("torchvision", "googlenet").kwargs == {"aux_logits": False}
    # asked for explicitly, the heads are measured
    assert compute_arch_facts("torchvision", "googlenet", kwargs={"aux_logits": True}).params > 13_000_000
