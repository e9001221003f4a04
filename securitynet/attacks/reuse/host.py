"""The host system that reuses a primitive: a fresh linear head trained on the host's task
over the primitive (frozen, or fine-tuned with it), and the attack's figures over several
host-training seeds, paired (same seed, same head initialisation and batch order) between
the benign and the malicious primitive. Whether STRIP rejects the target input on either
host is measured, not assumed.

Imports torch at import time: only the attack's code paths import this module."""

from __future__ import annotations

import copy
import logging
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from securitynet.attacks.reuse.config import ReuseConfig, ReuseResult, StripVerdict
from securitynet.attacks.reuse.craft import craft_malicious, relative_drift
from securitynet.attacks.reuse.primitive import FeatureExtractor, features
from securitynet.errors import AttackError

log = logging.getLogger(__name__)

BATCH = 128


@dataclass(frozen=True)
class HostData:
    """The host's task: preprocessed training and test inputs with labels."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: int


def train_host(
    primitive: FeatureExtractor, data: HostData, config: ReuseConfig, *, seed: int
) -> nn.Sequential:
    """The host's classifier: ``primitive`` (a copy when fine-tuned) then a fresh linear head."""
    torch.manual_seed(seed)
    dim = int(features(primitive, data.train_x[:1]).shape[1])
    head = nn.Linear(dim, data.classes).to(data.train_x.device)
    gen = torch.Generator().manual_seed(seed)
    if config.fine_tune == "head":
        inputs = features(primitive, data.train_x)
        body: nn.Module = primitive
        groups = [{"params": head.parameters(), "lr": config.host_lr}]
        trained: nn.Module = head
    else:
        inputs = data.train_x
        tuned = copy.deepcopy(primitive)
        for p in tuned.parameters():
            p.requires_grad_(True)
        body = tuned
        trained = nn.Sequential(tuned, head)
        groups = [
            {"params": head.parameters(), "lr": config.host_lr},
            {"params": [p for _, p in tuned.trainable()], "lr": config.host_lr / 10},
        ]
    opt = torch.optim.Adam(groups)
    trained.train()
    for _ in range(config.host_epochs):
        for idx in torch.randperm(len(data.train_y), generator=gen).split(BATCH):
            opt.zero_grad()
            nn.functional.cross_entropy(trained(inputs[idx]), data.train_y[idx]).backward()
            opt.step()
    host = nn.Sequential(body, head).eval()
    for p in host.parameters():
        p.requires_grad_(False)
    return host


@torch.no_grad()
def _probs(host: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.softmax(host(b), 1) for b in x.split(1024)])


def strip_verdict(
    host: nn.Module, target_x: torch.Tensor, clean_x: torch.Tensor, config: ReuseConfig
) -> StripVerdict:
    """STRIP on ``host``: the first target's entropy against a threshold set on ``clean_x``
    (half of them score the threshold, the other half serve as overlays)."""
    from securitynet.attacks.backdoor.strip import strip_entropy, threshold_at_frr
    from securitynet.attacks.membership.query import NetQuery

    half = len(clean_x) // 2
    if half < 2:
        raise AttackError("STRIP needs at least four clean host inputs")
    query = NetQuery(host, "logits")
    overlays, scored = clean_x[:half], clean_x[half:]
    clean = strip_entropy(query, scored, overlays, copies=config.strip_copies, seed=config.seed)
    threshold = threshold_at_frr(clean, config.strip_frr)
    target = float(
        strip_entropy(query, target_x[:1], overlays, copies=config.strip_copies, seed=config.seed)[0]
    )
    return StripVerdict(
        target_entropy=target, threshold=threshold, frr=config.strip_frr, flagged=target < threshold
    )


def run_reuse(
    extractor: FeatureExtractor,
    data: HostData,
    *,
    target_x: torch.Tensor,
    target_class: int,
    reference_x: torch.Tensor,
    clean_x: torch.Tensor,
    config: ReuseConfig,
    strip: bool = True,
    strip_inputs: int = 400,
) -> tuple[ReuseResult, FeatureExtractor]:
    """Craft a malicious copy of ``extractor``, then train hosts over the benign and the
    malicious primitive with the same seeds and compare them on the target and on clean
    host test inputs; STRIP runs on the first seed's two hosts. Returns the figures and the
    malicious primitive."""
    if not 0 <= target_class < data.classes:
        raise AttackError(
            f"target class {target_class} is not one of the host's {data.classes} classes"
        )
    started = time.perf_counter()
    malicious, craft = craft_malicious(extractor, target_x, reference_x, clean_x, config)
    drift = relative_drift(features(extractor, data.test_x), features(malicious, data.test_x))
    seeds = [config.seed + i for i in range(config.host_seeds)]
    success: list[float] = []
    benign_hits: list[float] = []
    acc_benign: list[float] = []
    acc_malicious: list[float] = []
    scores_benign = torch.zeros(data.classes)
    scores_malicious = torch.zeros(data.classes)
    hosts: dict[str, nn.Module] = {}
    for seed in seeds:
        for name, primitive in (("benign", extractor), ("malicious", malicious)):
            host = train_host(primitive, data, config, seed=seed)
            accuracy = 100 * float((_probs(host, data.test_x).argmax(1) == data.test_y).double().mean())
            target_probs = _probs(host, target_x).cpu()
            hit = float((target_probs.argmax(1) == target_class).double().mean())
            if name == "benign":
                acc_benign.append(accuracy)
                benign_hits.append(hit)
                scores_benign += target_probs[0] / len(seeds)
            else:
                acc_malicious.append(accuracy)
                success.append(hit)
                scores_malicious += target_probs[0] / len(seeds)
            hosts.setdefault(name, host)
        log.info(
            "host seed %d: clean accuracy %.2f %% benign, %.2f %% malicious; target hit %.2f",
            seed,
            acc_benign[-1],
            acc_malicious[-1],
            success[-1],
        )
    deltas = [m - b for m, b in zip(acc_malicious, acc_benign, strict=True)]
    strip_b = strip_m = None
    if strip:
        pick = torch.from_numpy(
            np.random.default_rng(config.seed).permutation(len(data.test_x))[:strip_inputs]
        )
        strip_b = strip_verdict(hosts["benign"], target_x, data.test_x[pick], config)
        strip_m = strip_verdict(hosts["malicious"], target_x, data.test_x[pick], config)
    result = ReuseResult(
        target_class=target_class,
        attack_success=statistics.fmean(success),
        benign_success=statistics.fmean(benign_hits),
        clean_accuracy_benign=statistics.fmean(acc_benign),
        clean_accuracy_malicious=statistics.fmean(acc_malicious),
        clean_accuracy_delta=statistics.fmean(deltas),
        feature_drift=drift,
        seeds=seeds,
        success_per_seed=success,
        delta_per_seed=deltas,
        target_scores_benign=[float(s) for s in scores_benign],
        target_scores_malicious=[float(s) for s in scores_malicious],
        craft=craft,
        strip_benign=strip_b,
        strip_malicious=strip_m,
        seconds=time.perf_counter() - started,
    )
    return result, malicious
