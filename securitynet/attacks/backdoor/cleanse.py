"""Neural Cleanse (Wang et al., IEEE S&P 2019): reverse-engineer, for every label, the
smallest trigger that sends clean inputs to it; a backdoored label needs a much smaller
one than the others.

    >>> from securitynet.attacks.backdoor import CleanseConfig, neural_cleanse
    >>> result = neural_cleanse(NetQuery(net), clean_inputs, CleanseConfig(), budget_s=600)
    >>> result.flagged, result.anomaly_index      # labels whose trigger is an outlier
    >>> save_trigger_grid(result, Path("triggers.png"))

A trigger is a mask ``m`` in ``[0, 1]^{H x W}`` and a pattern ``p`` in the inputs' value
range, both parametrised through ``tanh``; a stamped input is ``(1 - m) * x + m * p``.
For label ``y`` the loss is ``CE(net(stamped), y) + cost * |m|_1``, optimised with Adam
(lr 0.1, betas 0.5 / 0.9). One *step* is ``batches_per_step`` mini-batches (the paper's
epoch over its clean sample); after each step:

- **cost schedule** (the paper's): the step's attack success at or above
  ``success_threshold`` for ``patience`` steps multiplies the cost by ``cost_multiplier``,
  below it for ``patience`` steps divides it by ``cost_multiplier ** 1.5``;
- the **best trigger** is the smallest mask seen at a step reaching the threshold;
- **early stopping**: a label stops once its best norm has not improved (by
  ``min_improvement``, relative) for ``early_stop_patience`` steps, after the cost has
  moved both up and down (the paper's condition). ``early_stop=False`` runs the fixed
  schedule of ``max_steps`` steps.

Labels are **batched**: ``labels_per_batch`` triggers are optimised at once, one forward
pass of ``K x B`` stamped inputs; a finished label's slot goes to the next label. Adam is
applied per label, and every label sees the same mini-batches whatever the batching, so a
batched run reaches the verdict of one label at a time. ``labels_per_batch`` defaults to
what fits ``memory_budget_mb`` (activations measured on one input).

The verdict (:mod:`.verdict`): ``anomaly_index = |norm - median| / (1.4826 * MAD)`` over the labels' L1
norms; a label is flagged when its norm is below the median and its index exceeds 2.

Before optimising, :func:`estimate_cleanse_cost` states the work (forward/backward passes,
an upper bound: early stopping only shortens it) and its time from a few timed real
iterations; :func:`neural_cleanse` refuses with :class:`AttackBudgetError` over ``budget_s``.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from securitynet.attacks.backdoor.verdict import anomaly_index, flagged_labels
from securitynet.attacks.membership.query import NetQuery
from securitynet.errors import AttackBudgetError, AttackError, DataShapeError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

_EPS = 1e-7


class CleanseConfig(BaseModel):
    """Neural Cleanse's optimisation and schedule. Defaults follow the paper's code, scaled
    to a small clean sample (a step is 8 mini-batches of 32, not a pass over 1,000 images)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    labels: list[int] | None = Field(default=None, description="Labels to scan; None: all.")
    max_steps: int = Field(default=200, ge=1)
    batches_per_step: int = Field(default=8, ge=1)
    batch_size: int = Field(default=32, ge=1)
    lr: float = Field(default=0.1, gt=0)
    init_cost: float = Field(default=1e-3, gt=0)
    cost_multiplier: float = Field(default=2.0, gt=1)
    patience: int = Field(default=5, ge=1, description="Steps before the cost moves.")
    success_threshold: float = Field(default=0.99, gt=0, le=1)
    early_stop: bool = True
    early_stop_patience: int = Field(default=10, ge=1)
    min_improvement: float = Field(default=0.01, ge=0, lt=1)
    labels_per_batch: int | None = Field(default=None, ge=1)
    memory_budget_mb: float = Field(default=512.0, gt=0)
    value_range: tuple[float, float] | None = Field(
        default=None, description="Pattern range; None: the clean inputs' min and max."
    )
    seed: int = 0


class CleanseCost(BaseModel):
    """The work a scan will do at most, stated before it starts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    labels: int
    labels_per_batch: int
    iterations: int = Field(description="Optimisation iterations (batches of K x B inputs).")
    passes: int = Field(description="Forward+backward passes of one input, at most.")
    seconds_per_iteration: float
    seconds: float = Field(description="Estimated wall time of the fixed schedule (upper bound).")


class CleanseResult(BaseModel):
    """Per-label trigger norms and the verdict; ``masks`` (L x 1 x H x W) and ``patterns``
    (L x C x H x W) are tensors, left out of ``model_dump``."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    labels: list[int]
    norms: list[float] = Field(description="L1 norm of each label's best mask.")
    anomaly_index: list[float]
    flagged: list[int]
    reached: list[bool] = Field(description="Whether a mask reached the success threshold.")
    attack_success: list[float] = Field(description="Of each best trigger on the clean inputs.")
    steps: list[int] = Field(description="Steps each label ran.")
    seconds: float
    estimate: CleanseCost
    masks: Any = Field(exclude=True, repr=False)
    patterns: Any = Field(exclude=True, repr=False)

    @property
    def total_steps(self) -> int:
        return sum(self.steps)

    @property
    def suspect(self) -> int | None:
        """The flagged label with the highest anomaly index (the likeliest backdoor target;
        on small nets a clean label may cross the threshold beside it), or None."""
        if not self.flagged:
            return None
        return max(self.flagged, key=lambda label: self.anomaly_index[self.labels.index(label)])


def _activation_bytes(query: NetQuery, sample: torch.Tensor) -> int:
    """Bytes of the input and of every leaf module's output for one input: what a backward
    pass keeps alive."""
    import torch

    total = 0

    def hook(_module: Any, _inputs: Any, output: Any) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel() * output.element_size()

    leaves = [m for m in query.net.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            query.log_probs(sample)
    finally:
        for handle in handles:
            handle.remove()
    return total + sample.numel() * sample.element_size()


def choose_labels_per_batch(
    query: NetQuery, sample: torch.Tensor, config: CleanseConfig, n_labels: int
) -> int:
    """The configured ``labels_per_batch``, or as many labels as fit the memory budget
    (activations of ``batch_size`` inputs per label, twice over for their gradients)."""
    if config.labels_per_batch is not None:
        return min(config.labels_per_batch, n_labels)
    per_label = 2 * config.batch_size * _activation_bytes(query, sample[:1])
    fit = int(config.memory_budget_mb * 2**20 // max(per_label, 1))
    return max(1, min(fit, n_labels))


class _Scan:
    """The optimisation state of every label: tanh parameters, Adam moments, schedule."""

    def __init__(
        self, query: NetQuery, inputs: torch.Tensor, labels: list[int], config: CleanseConfig
    ) -> None:
        import torch

        self.query, self.config, self.labels = query, config, labels
        self.device = query.device
        self.inputs = inputs.to(self.device)
        low, high = config.value_range or (float(inputs.min()), float(inputs.max()))
        if not high > low:
            raise AttackError(f"the inputs' value range [{low}, {high}] is empty")
        self.low, self.high = low, high
        n, (c, h, w) = len(labels), inputs.shape[1:]
        self.a = torch.empty(n, 1, h, w)
        self.b = torch.empty(n, c, h, w)
        for i, label in enumerate(labels):  # the same start for a label however it is batched
            gen = torch.Generator().manual_seed(config.seed * 1_000_003 + label)
            self.a[i] = torch.atanh((torch.rand(1, h, w, generator=gen) - 0.5) * (2 - _EPS))
            self.b[i] = torch.atanh((torch.rand(c, h, w, generator=gen) - 0.5) * (2 - _EPS))
        self.a, self.b = self.a.to(self.device), self.b.to(self.device)
        self.moments = [torch.zeros_like(t) for t in (self.a, self.a, self.b, self.b)]
        self.updates = [0] * n
        self.cost = [config.init_cost] * n
        self.up = [0] * n
        self.down = [0] * n
        self.moved_up = [False] * n
        self.moved_down = [False] * n
        self.best = [math.inf] * n
        self.best_a = self.a.clone()
        self.best_b = self.b.clone()
        self.stale = [0] * n
        self.watch = [math.inf] * n
        self.steps = [0] * n
        self.per_batch = len(inputs) // config.batch_size
        self.orders: dict[int, torch.Tensor] = {}
        if self.per_batch < 1:
            raise AttackError(
                f"Neural Cleanse needs at least batch_size={config.batch_size} clean inputs, got {len(inputs)}"
            )

    def mask_pattern(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        mask = torch.tanh(a) / (2 - _EPS) + 0.5
        pattern = self.low + (self.high - self.low) * (torch.tanh(b) / (2 - _EPS) + 0.5)
        return mask, pattern

    def _batch(self, number: int) -> torch.Tensor:
        """Mini-batch ``number`` of the label-independent stream (one permutation per pass)."""
        import torch

        epoch, slot = divmod(number, self.per_batch)
        order = self.orders.get(epoch)
        if order is None:
            gen = torch.Generator().manual_seed(self.config.seed * 7919 + epoch)
            order = self.orders[epoch] = torch.randperm(len(self.inputs), generator=gen)
        size = self.config.batch_size
        return order[slot * size : (slot + 1) * size]

    def iterate(self, slots: list[int], batch_in_step: int) -> tuple[list[float], list[float]]:
        """One Adam update of the labels at positions ``slots``; their (success, norm)."""
        import torch

        cfg = self.config
        idx = torch.tensor(slots, device=self.device)
        a = self.a[idx].clone().requires_grad_(True)
        b = self.b[idx].clone().requires_grad_(True)
        mask, pattern = self.mask_pattern(a, b)
        batches = [
            self.inputs[self._batch(self.steps[s] * cfg.batches_per_step + batch_in_step)]
            for s in slots
        ]
        x = torch.stack(batches)  # K x B x C x H x W
        stamped = (1 - mask.unsqueeze(1)) * x + (mask * pattern).unsqueeze(1)
        logp = self.query.log_probs(stamped.flatten(0, 1)).view(len(slots), x.shape[1], -1)
        targets = torch.tensor([self.labels[s] for s in slots], device=self.device)
        picked = logp.gather(2, targets.view(-1, 1, 1).expand(-1, x.shape[1], 1)).squeeze(2)
        ce = -picked.mean(1)
        norms = mask.flatten(1).sum(1)
        costs = torch.tensor([self.cost[s] for s in slots], device=self.device)
        ga, gb = torch.autograd.grad((ce + costs * norms).sum(), [a, b])
        success = (logp.argmax(2) == targets.view(-1, 1)).float().mean(1)
        self._adam(idx, slots, ga, gb)
        return success.tolist(), norms.detach().tolist()

    def _adam(
        self, idx: torch.Tensor, slots: list[int], ga: torch.Tensor, gb: torch.Tensor
    ) -> None:
        import torch

        beta1, beta2, lr = 0.5, 0.9, self.config.lr
        for s in slots:
            self.updates[s] += 1
        t = torch.tensor([self.updates[s] for s in slots], device=self.device, dtype=ga.dtype)
        for param, m, v, g in ((self.a, *self.moments[:2], ga), (self.b, *self.moments[2:], gb)):
            m[idx] = beta1 * m[idx] + (1 - beta1) * g
            v[idx] = beta2 * v[idx] + (1 - beta2) * g * g
            shape = (-1,) + (1,) * (g.dim() - 1)
            m_hat = m[idx] / (1 - beta1 ** t.view(shape))
            v_hat = v[idx] / (1 - beta2 ** t.view(shape))
            param[idx] = param[idx] - lr * m_hat / (v_hat.sqrt() + 1e-8)

    def end_step(self, s: int, success: float) -> bool:
        """The schedule after label position ``s`` finished a step; True when it is done."""
        cfg = self.config
        self.steps[s] += 1
        mask, _ = self.mask_pattern(self.a[s], self.b[s])
        norm = float(mask.sum())
        if success >= cfg.success_threshold and norm < self.best[s]:
            self.best[s] = norm
            self.best_a[s], self.best_b[s] = self.a[s], self.b[s]
        if success >= cfg.success_threshold:
            self.up[s], self.down[s] = self.up[s] + 1, 0
        else:
            self.up[s], self.down[s] = 0, self.down[s] + 1
        if self.up[s] >= cfg.patience:
            self.up[s], self.moved_up[s] = 0, True
            self.cost[s] *= cfg.cost_multiplier
        elif self.down[s] >= cfg.patience:
            self.down[s], self.moved_down[s] = 0, True
            self.cost[s] /= cfg.cost_multiplier**1.5
        if math.isfinite(self.best[s]):
            if self.best[s] < (1 - cfg.min_improvement) * self.watch[s]:
                self.stale[s], self.watch[s] = 0, self.best[s]
            else:
                self.stale[s] += 1
        if self.steps[s] >= cfg.max_steps:
            return True
        return (
            cfg.early_stop
            and self.moved_up[s]
            and self.moved_down[s]
            and self.stale[s] >= cfg.early_stop_patience
        )


def _labels_of(query: NetQuery, inputs: torch.Tensor, config: CleanseConfig) -> list[int]:
    import torch

    with torch.no_grad():
        classes = int(query.log_probs(inputs[:1]).shape[-1])
    labels = list(range(classes)) if config.labels is None else list(config.labels)
    if len(set(labels)) != len(labels) or any(not 0 <= y < classes for y in labels):
        raise AttackError(f"labels to scan must be distinct and within 0-{classes - 1}: {labels}")
    if len(labels) < 3:
        raise AttackError("Neural Cleanse compares labels: it needs at least 3")
    return labels


def _check_inputs(inputs: torch.Tensor) -> None:
    if inputs.dim() != 4:
        raise DataShapeError(
            f"expected clean inputs N x C x H x W, got shape {tuple(inputs.shape)}"
        )


class _FrozenNet:
    """The net's parameters out of autograd while triggers are optimised (restored after)."""

    def __init__(self, query: NetQuery) -> None:
        self.params = list(query.net.parameters())
        self.flags = [p.requires_grad for p in self.params]

    def __enter__(self) -> None:
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc: object) -> None:
        for p, flag in zip(self.params, self.flags, strict=True):
            p.requires_grad_(flag)


def _synchronise(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def estimate_cleanse_cost(
    query: NetQuery, inputs: torch.Tensor, config: CleanseConfig, *, probe_iterations: int = 2
) -> CleanseCost:
    """The fixed schedule's work, and its time from ``probe_iterations`` timed real
    iterations of ``labels_per_batch`` labels (after one untimed warm-up)."""
    _check_inputs(inputs)
    labels = _labels_of(query, inputs, config)
    k = choose_labels_per_batch(query, inputs, config, len(labels))
    probe = _Scan(query, inputs, labels[:k], config)
    with _FrozenNet(query):
        start = time.perf_counter()
        for i in range(probe_iterations + 1):
            probe.iterate(list(range(k)), i)
            if i == 0:
                _synchronise(query.device)
                start = time.perf_counter()
        _synchronise(query.device)
    per_iteration = (time.perf_counter() - start) / probe_iterations
    iterations = math.ceil(len(labels) / k) * config.max_steps * config.batches_per_step
    return CleanseCost(
        labels=len(labels),
        labels_per_batch=k,
        iterations=iterations,
        passes=len(labels) * config.max_steps * config.batches_per_step * config.batch_size,
        seconds_per_iteration=per_iteration,
        seconds=iterations * per_iteration,
    )


def neural_cleanse(
    query: NetQuery,
    inputs: torch.Tensor,
    config: CleanseConfig | None = None,
    *,
    budget_s: float | None = None,
) -> CleanseResult:
    """Reverse-engineer a trigger per label from the clean ``inputs`` (preprocessed as the
    net expects) and flag the outliers. Raises :class:`AttackBudgetError` before optimising
    when the estimated time of the fixed schedule exceeds ``budget_s``."""
    import torch

    from securitynet import progress

    cfg = config or CleanseConfig()
    estimate = estimate_cleanse_cost(query, inputs, cfg)
    log.info(
        "Neural Cleanse: %d labels, %d at a time, at most %d passes, about %.0f s",
        estimate.labels, estimate.labels_per_batch, estimate.passes, estimate.seconds,
    )  # fmt: skip
    if budget_s is not None and estimate.seconds > budget_s:
        raise AttackBudgetError(
            f"Neural Cleanse on {estimate.labels} labels would take up to about {estimate.seconds:.0f} s, over the budget of {budget_s:.0f} s",
            hint="Raise the budget, scan fewer labels, lower max_steps, or run on a GPU.",
            estimate_s=estimate.seconds,
            budget_s=budget_s,
        )
    labels = _labels_of(query, inputs, cfg)
    scan = _Scan(query, inputs, labels, cfg)
    k = estimate.labels_per_batch
    queue = list(range(len(labels)))
    active: list[int] = []
    start = time.perf_counter()
    with _FrozenNet(query):
        for _ in progress.track(range(cfg.max_steps * len(labels)), description="neural cleanse"):
            active += [queue.pop(0) for _ in range(min(k - len(active), len(queue)))]
            if not active:
                break
            success = np.zeros(len(active))
            for j in range(cfg.batches_per_step):
                success += scan.iterate(active, j)[0]
            finished = {
                s
                for s, rate in zip(active, success / cfg.batches_per_step, strict=True)
                if scan.end_step(s, rate)
            }
            active = [s for s in active if s not in finished]
    _synchronise(query.device)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        masks, patterns = scan.mask_pattern(scan.best_a, scan.best_b)
        reached = [math.isfinite(b) for b in scan.best]
        if not all(reached):  # no mask reached the threshold: keep the last one
            last_m, last_p = scan.mask_pattern(scan.a, scan.b)
            keep = torch.tensor(reached, device=masks.device).view(-1, 1, 1, 1)
            masks, patterns = torch.where(keep, masks, last_m), torch.where(keep, patterns, last_p)
        success_rates = [
            _success(query, scan.inputs, masks[i], patterns[i], label, cfg.batch_size * 8)
            for i, label in enumerate(labels)
        ]
    norms = [float(m.sum()) for m in masks]
    index = anomaly_index(norms)
    return CleanseResult(
        labels=labels,
        norms=norms,
        anomaly_index=[float(v) for v in index],
        flagged=flagged_labels(labels, norms),
        reached=reached,
        attack_success=success_rates,
        steps=list(scan.steps),
        seconds=seconds,
        estimate=estimate,
        masks=masks.cpu(),
        patterns=patterns.cpu(),
    )


def _success(
    query: NetQuery,
    inputs: torch.Tensor,
    mask: torch.Tensor,
    pattern: torch.Tensor,
    label: int,
    batch: int,
) -> float:
    hits = 0
    for start in range(0, len(inputs), batch):
        x = inputs[start : start + batch]
        out = query.log_probs((1 - mask) * x + mask * pattern)
        hits += int((out.argmax(1) == label).sum())
    return hits / len(inputs)


__all__ = [
    "CleanseConfig",
    "CleanseCost",
    "CleanseResult",
    "choose_labels_per_batch",
    "estimate_cleanse_cost",
    "neural_cleanse",
]
