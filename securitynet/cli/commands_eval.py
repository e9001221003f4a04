"""Evaluation commands: ``eval accuracy|mia|steal|backdoor|reuse`` and ``results``. Thin: options in,
one call into :mod:`securitynet.evaluate` or the catalogue, rows out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from securitynet.cli.render import TableFormat, emit_rows, note

if TYPE_CHECKING:
    from securitynet.evaluate import BatchReport

EntriesArg = Annotated[
    list[str] | None, typer.Argument(metavar="[ID]...", help="Entry ids (or use --where).")
]
WhereOpt = Annotated[
    str | None,
    typer.Option("--where", help="SQL condition on the entry table, e.g. \"dataset = 'MNIST'\"."),
]
DataOpt = Annotated[
    str,
    typer.Option(
        "--data", help="mnist, fashion-mnist, digits, cifar10, cifar100, svhn, folder:PATH."
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Folder of the data sets (default: SECURITYNET_DATA_DIR)."),
]
ExecutorOpt = Annotated[str, typer.Option("--executor", help="local (this process) or ray.")]
AddressOpt = Annotated[
    str | None, typer.Option("--address", help="Ray cluster address (default: a local one).")
]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Run again even when an identical result is stored.")
]
FormatOpt = Annotated[TableFormat, typer.Option("--format", "-f", help="table, json or csv.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Images per forward pass.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1, ...")]

_COLUMNS = [
    "entry_id",
    "attack",
    "variant",
    "metric",
    "value",
    "lower",
    "upper",
    "status",
    "reused",
    "error",
]
_TABLE = ["entry_id", "variant", "metric", "value", "lower", "upper", "status", "reused"]
_MIA_TABLE_METRICS = {
    "auc",
    "balanced_accuracy",
    "tpr_at_1pct_fpr",
    "tpr_at_0_1pct_fpr",
    "top1",
    "agreement",
    "accuracy",
    "attack_success",
    "clean_accuracy_delta",
    "feature_drift",
    "strip_flagged_malicious",
    "threshold",
    "clean_rejected",
    "detection_rate",
    "anomaly_index_max",
    "top_label",
    "flagged",
}


def _quiet_for(fmt: TableFormat) -> None:
    if fmt is not TableFormat.TABLE:
        from securitynet import progress

        progress.set_enabled(False)


def _emit(report: BatchReport, fmt: TableFormat) -> None:
    rows = report.rows()
    if fmt is TableFormat.TABLE:
        rows = [r for r in rows if r["metric"] in _MIA_TABLE_METRICS or r["status"] != "ok"]
    emit_rows(rows, fmt, columns=_COLUMNS, table_columns=_TABLE)
    note(
        f"{report.stored} stored, {report.reused} reused, {report.failed} failed "
        f"in {report.seconds:.1f} s ({report.executor} executor)"
    )
    for outcome in report.outcomes:
        for ev in outcome.evaluations:
            if ev.status != "ok":
                note(f"failed: {outcome.entry_id} {ev.variant}: {ev.error}")
        skipped: dict[str, str] = outcome.extra.get("skipped", {})
        for reason in dict.fromkeys(skipped.values()):
            names = ", ".join(v for v, r in skipped.items() if r == reason)
            note(f"skipped: {outcome.entry_id} {names}: {reason}")


def _run(
    request: Any,
    entries: list[str] | None,
    where: str | None,
    executor: str,
    address: str | None,
    force: bool,
) -> BatchReport:
    from securitynet.catalogue.api import Catalogue
    from securitynet.evaluate import evaluate, make_executor

    with Catalogue() as cat:
        return evaluate(
            request,
            entries=entries or [],
            where=where,
            catalogue=cat,
            executor=make_executor(executor, address=address),
            force=force,
        )


def eval_accuracy(
    entries: EntriesArg = None,
    data: DataOpt = "mnist",
    split: Annotated[str, typer.Option("--split", help="Split to measure on.")] = "test",
    max_samples: Annotated[
        int | None, typer.Option("--max-samples", min=1, help="Measure on a seeded sample.")
    ] = None,
    where: WhereOpt = None,
    data_dir: DataDirOpt = None,
    batch_size: BatchOpt = 512,
    device: DeviceOpt = "cpu",
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    force: ForceOpt = False,
    fmt: FormatOpt = TableFormat.TABLE,
) -> None:
    """Measure top-1 accuracy through each entry's own preprocessing; store it as a result
    and as a measured accuracy claim beside the published ones."""
    from securitynet.evaluate import AccuracyRequest, DataSpec

    _quiet_for(fmt)
    request = AccuracyRequest(
        data=DataSpec(name=data, data_dir=data_dir, batch_size=batch_size, device=device),
        split=split,
        max_samples=max_samples,
    )
    report = _run(request, entries, where, executor, address, force)
    _emit(report, fmt)
    if report.failed:
        raise typer.Exit(1)


def eval_mia(
    entries: EntriesArg = None,
    data: DataOpt = "mnist",
    members: Annotated[
        str,
        typer.Option("--members", help="train, test, train[:3000], @FILE, random_split:SEED:N."),
    ] = "train",
    nonmembers: Annotated[
        str, typer.Option("--nonmembers", help="Same forms as --members.")
    ] = "test",
    attacks: Annotated[
        str,
        typer.Option(
            "--attacks",
            help="all, metric, learned, robust, verified, lira, or names: confidence,mlp_top3,...",
        ),
    ] = "metric,learned",
    max_samples: Annotated[
        int,
        typer.Option("--max-samples", min=1, help="At most N members and N non-members (seeded)."),
    ] = 5000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    eps: Annotated[
        float,
        typer.Option("--eps", min=0, max=1, help="PGD L-inf radius in pixels (robust attacks)."),
    ] = 0.3,
    pgd_steps: Annotated[int, typer.Option("--pgd-steps", min=1)] = 10,
    verified_eps: Annotated[
        float | None,
        typer.Option(
            "--verified-eps",
            min=0,
            max=1,
            help="Certified L-inf radius in pixels (verified attacks); default: the entry's "
            "certified-training epsilon.",
        ),
    ] = None,
    shadows: Annotated[int, typer.Option("--shadows", min=2, help="LiRA shadow nets.")] = 16,
    shadow_epochs: Annotated[int, typer.Option("--shadow-epochs", min=1)] = 20,
    budget_s: Annotated[
        float, typer.Option("--budget-s", min=1, help="Refuse LiRA above this estimate (seconds).")
    ] = 1800.0,
    expect_member_accuracy: Annotated[
        float | None,
        typer.Option(
            "--expect-member-accuracy",
            min=0,
            max=1,
            help="Fail unless the net is this accurate on the members (±0.05).",
        ),
    ] = None,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples per interval.")
    ] = 200,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write the ROC curves to this image.")
    ] = None,
    where: WhereOpt = None,
    data_dir: DataDirOpt = None,
    batch_size: BatchOpt = 512,
    device: DeviceOpt = "cpu",
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    force: ForceOpt = False,
    fmt: FormatOpt = TableFormat.TABLE,
) -> None:
    """Membership inference on each entry: AUC, balanced accuracy and TPR at 0.1 % / 1 % FPR
    with bootstrap intervals, stored in the catalogue (see `securitynet results`)."""
    from securitynet.attacks.membership.lira import ShadowRecipe
    from securitynet.attacks.membership.robust import PGDConfig
    from securitynet.attacks.membership.run import MembershipConfig
    from securitynet.attacks.membership.verified import VerifiedConfig
    from securitynet.evaluate import DataSpec, MembershipRequest, plot_outcomes

    _quiet_for(fmt)
    config = MembershipConfig(
        attacks=[attacks],
        seed=seed,
        bootstrap=bootstrap,
        pgd=PGDConfig(eps=eps, steps=pgd_steps),
        verified=VerifiedConfig(eps=verified_eps),
        shadow=ShadowRecipe(n_shadow=shadows, epochs=shadow_epochs),
        budget_s=budget_s,
    )
    request = MembershipRequest(
        data=DataSpec(name=data, data_dir=data_dir, batch_size=batch_size, device=device),
        members=members,
        nonmembers=nonmembers,
        max_samples=max_samples,
        expect_member_accuracy=expect_member_accuracy,
        config=config,
    )
    report = _run(request, entries, where, executor, address, force)
    _emit(report, fmt)
    if plot is not None:
        if any(o.roc for o in report.outcomes):
            note(f"ROC curves: {plot_outcomes(report, plot)}")
        else:
            note(
                "no ROC curves to plot (results reused from the catalogue, or failed); --force runs again"
            )
    if report.failed:
        raise typer.Exit(1)


def eval_steal(
    entries: EntriesArg = None,
    queries: Annotated[
        str, typer.Option("--queries", help="The attacker's query data set (same names as --data).")
    ] = "mnist",
    query_split: Annotated[str, typer.Option("--query-split")] = "train",
    test_split: Annotated[
        str, typer.Option("--test-split", help="The target's test data, same data set.")
    ] = "test",
    budget: Annotated[
        str, typer.Option("--budget", help="Query budgets, comma-separated: 500,1000,5000.")
    ] = "1000",
    labels: Annotated[
        str, typer.Option("--labels", help="What the API returns: soft, topk or hard.")
    ] = "soft",
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="k for --labels topk.")] = 3,
    surrogate: Annotated[
        str,
        typer.Option(
            "--surrogate",
            help="small_cnn, a timm or torchvision architecture (resnet18), or a catalogue entry id; built untrained.",
        ),
    ] = "small_cnn",
    policy: Annotated[
        str,
        typer.Option("--policy", help="Query selection: random, uncertainty, kcenter or adaptive."),
    ] = "random",
    round_size: Annotated[
        int, typer.Option("--round-size", min=1, help="Queries per round (active policies).")
    ] = 100,
    candidates: Annotated[
        int,
        typer.Option("--candidates", min=1, help="Random pool images an active policy picks from."),
    ] = 10_000,
    arms: Annotated[
        int, typer.Option("--arms", min=2, help="Pool clusters the adaptive policy draws from.")
    ] = 10,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 20,
    seeds: Annotated[
        int, typer.Option("--seeds", min=1, max=20, help="Repeats; the median is stored.")
    ] = 1,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    max_test: Annotated[
        int | None, typer.Option("--max-test", min=1, help="Score on a seeded test sample.")
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Write accuracy and agreement against budget (.png, .svg, .pdf)."),
    ] = None,
    public: Annotated[
        str | None,
        typer.Option(
            "--public",
            help="Published figures for the plot: BUDGET=AGREEMENT[/ACCURACY],... e.g. 1000=93.13/92.64.",
        ),
    ] = None,
    public_label: Annotated[str, typer.Option("--public-label")] = "public",
    where: WhereOpt = None,
    data_dir: DataDirOpt = None,
    batch_size: BatchOpt = 512,
    device: DeviceOpt = "cpu",
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    force: ForceOpt = False,
    fmt: FormatOpt = TableFormat.TABLE,
) -> None:
    """Steal each entry (Knockoff style): query it within each budget (randomly or by an
    active policy), train a surrogate on its answers, store the surrogate's accuracy and its
    agreement with the entry; --plot draws both against the budget."""
    from pydantic import ValidationError

    from securitynet.attacks.stealing import StealingConfig
    from securitynet.attacks.stealing.plot import FORMATS, parse_public
    from securitynet.errors import AttackError
    from securitynet.evaluate import DataSpec, StealingRequest, budget_curves, plot_stealing

    _quiet_for(fmt)
    try:
        config = StealingConfig.model_validate(
            {
                "budgets": [int(b) for b in budget.split(",") if b.strip()],
                "labels": labels,
                "top_k": top_k,
                "surrogate": surrogate,
                "policy": policy,
                "round_size": round_size,
                "candidates": candidates,
                "arms": arms,
                "epochs": epochs,
                "seeds": seeds,
                "seed": seed,
            }
        )
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise AttackError(f"bad stealing options: {reasons}") from exc
    except ValueError as exc:
        raise AttackError(f"bad stealing options: --budget {budget!r} is not a list of integers") from exc
    request = StealingRequest(
        data=DataSpec(name=queries, data_dir=data_dir, batch_size=batch_size, device=device),
        query_split=query_split,
        test_split=test_split,
        max_test=max_test,
        config=config,
    )
    figures = parse_public(public) if public else []
    if plot is not None and plot.suffix.lower() not in FORMATS:
        raise AttackError(f"--plot {plot.name}: use {', '.join(FORMATS)}")
    report = _run(request, entries, where, executor, address, force)
    _emit(report, fmt)
    if plot is not None:
        if budget_curves(report):
            note(f"agreement against budget: {plot_stealing(report, plot, public=figures, public_label=public_label)}")
        else:
            note("nothing to plot (every budget failed)")
    if report.failed:
        raise typer.Exit(1)


def eval_reuse(
    target_input: Annotated[
        str,
        typer.Option("--target-input", help="DATASET:SPLIT[INDEX] (mnist:test[17]) or an image file."),
    ],
    target_class: Annotated[
        int, typer.Option("--target-class", min=0, help="The class the host should see.")
    ],
    entries: EntriesArg = None,
    host_data: Annotated[
        str,
        typer.Option("--host-data", help="The host's task: its train split trains the host's head."),
    ] = "mnist",
    fine_tune: Annotated[
        str, typer.Option("--fine-tune", help="head (primitive frozen) or full.")
    ] = "head",
    param_fraction: Annotated[
        float, typer.Option("--param-fraction", help="Share of parameters perturbed.")
    ] = 0.02,
    max_drift: Annotated[
        float, typer.Option("--max-drift", help="Bound on clean inputs' relative feature change.")
    ] = 0.05,
    steps: Annotated[int, typer.Option("--steps", min=1)] = 200,
    host_train: Annotated[int, typer.Option("--host-train", min=10)] = 5000,
    host_test: Annotated[int, typer.Option("--host-test", min=10)] = 2000,
    host_seeds: Annotated[int, typer.Option("--host-seeds", min=1, max=20)] = 3,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Write the target and its class scores on both hosts here."),
    ] = None,
    where: WhereOpt = None,
    data_dir: DataDirOpt = None,
    batch_size: BatchOpt = 512,
    device: DeviceOpt = "cpu",
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    force: ForceOpt = False,
    fmt: FormatOpt = TableFormat.TABLE,
) -> None:
    """Model-reuse attack (Ji et al.) with each entry as the benign primitive: craft a malicious
    copy that makes a host built on it classify the target as --target-class; store the
    attack's success, the hosts' clean-accuracy change and the feature drift."""
    from pydantic import ValidationError

    from securitynet.attacks.reuse import ReuseConfig
    from securitynet.errors import AttackError
    from securitynet.evaluate import DataSpec, ReuseRequest, plot_reuse_outcomes

    _quiet_for(fmt)
    try:
        config = ReuseConfig.model_validate(
            {
                "fine_tune": fine_tune,
                "param_fraction": param_fraction,
                "max_drift": max_drift,
                "steps": steps,
                "host_train": host_train,
                "host_test": host_test,
                "host_seeds": host_seeds,
                "seed": seed,
            }
        )
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise AttackError(f"bad model-reuse options: {reasons}") from exc
    request = ReuseRequest(
        data=DataSpec(name=host_data, data_dir=data_dir, batch_size=batch_size, device=device),
        target=target_input,
        target_class=target_class,
        config=config,
    )
    request.target_input()  # a bad target fails before any entry loads
    report = _run(request, entries, where, executor, address, force)
    _emit(report, fmt)
    if plot is not None:
        written = plot_reuse_outcomes(report, plot)
        if written is not None:
            note(f"target scores: {written}")
        else:
            note("nothing to plot (results reused from the catalogue, or failed); --force runs again")
    if report.failed:
        raise typer.Exit(1)


def eval_backdoor(
    entries: EntriesArg = None,
    method: Annotated[
        str, typer.Option("--method", help="strip (entropy of blended inputs) or neural-cleanse.")
    ] = "strip",
    data: DataOpt = "mnist",
    split: Annotated[str, typer.Option("--split", help="Clean images from this split.")] = "test",
    max_samples: Annotated[
        int, typer.Option("--max-samples", min=3, help="Clean images drawn (seeded).")
    ] = 3000,
    frr: Annotated[
        float,
        typer.Option("--frr", min=0, max=0.99, help="STRIP: clean inputs falsely rejected at the threshold."),
    ] = 0.01,
    copies: Annotated[
        int, typer.Option("--copies", min=1, help="STRIP: overlays blended onto each input.")
    ] = 20,
    trigger: Annotated[
        str | None,
        typer.Option(
            "--trigger",
            help="STRIP: a suspected trigger, patch:SIZE[:VALUE][:CORNER] (VALUE 0-1, default 1 = white).",
        ),
    ] = None,
    steps: Annotated[
        int, typer.Option("--steps", min=1, help="Neural Cleanse: optimisation steps per label, at most.")
    ] = 200,
    labels_per_batch: Annotated[
        int | None,
        typer.Option("--labels-per-batch", min=1, help="Neural Cleanse: labels optimised at once (default: what fits memory)."),
    ] = None,
    budget_s: Annotated[
        float, typer.Option("--budget-s", min=1, help="Neural Cleanse: refuse above this estimate (seconds).")
    ] = 1800.0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Write the STRIP entropy histograms or the reversed triggers to this image."),
    ] = None,
    where: WhereOpt = None,
    data_dir: DataDirOpt = None,
    batch_size: BatchOpt = 512,
    device: DeviceOpt = "cpu",
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    force: ForceOpt = False,
    fmt: FormatOpt = TableFormat.TABLE,
) -> None:
    """Look for a backdoor in each entry. STRIP: the entropy threshold at --frr, the clean
    inputs it rejects and, with --trigger, the triggered inputs it catches. Neural Cleanse:
    a reversed trigger per label, their L1 norms, the anomaly index, the flagged labels.
    Stored in the catalogue as attack 'backdoor-detection' (see `securitynet results`)."""
    from pydantic import ValidationError

    from securitynet.attacks.backdoor.cleanse import CleanseConfig
    from securitynet.attacks.backdoor.strip import StripConfig
    from securitynet.errors import AttackError
    from securitynet.evaluate import DataSpec
    from securitynet.evaluate.backdoor import METHODS, BackdoorRequest, PatchTrigger, plot_backdoor

    _quiet_for(fmt)
    if method not in METHODS:
        raise AttackError(f"unknown backdoor detection method {method!r}; known: {', '.join(METHODS)}")
    if trigger and method != "strip":
        raise AttackError(
            "--trigger is for STRIP (Neural Cleanse reverse-engineers the triggers itself)"
        )
    try:
        request = BackdoorRequest.model_validate(
            {
                "data": DataSpec(name=data, data_dir=data_dir, batch_size=batch_size, device=device),
                "method": method,
                "split": split,
                "max_samples": max_samples,
                "seed": seed,
                "trigger": PatchTrigger.parse(trigger) if trigger else None,
                "strip": StripConfig(frr=frr, copies=copies, seed=seed),
                "cleanse": CleanseConfig(max_steps=steps, labels_per_batch=labels_per_batch, seed=seed),
                "budget_s": budget_s,
            }
        )
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise AttackError(f"bad backdoor options: {reasons}") from exc
    report = _run(request, entries, where, executor, address, force)
    _emit(report, fmt)
    if plot is not None:
        written = plot_backdoor(report, plot)
        for path in written:
            note(f"figure: {path}")
        if not written:
            note("nothing to plot (results reused from the catalogue, or failed); --force runs again")
    if report.failed:
        raise typer.Exit(1)


def results(
    entry: Annotated[str | None, typer.Option("--entry", help="Only this entry.")] = None,
    attack: Annotated[str | None, typer.Option("--attack", help="mia, accuracy, ...")] = None,
    variant: Annotated[
        str | None, typer.Option("--variant", help="confidence, lira_online, ...")
    ] = None,
    metric: Annotated[
        str | None, typer.Option("--metric", help="auc, tpr_at_1pct_fpr, top1, ...")
    ] = None,
    dataset: Annotated[str | None, typer.Option("--dataset")] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="evaluate, or a publication's name.")
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Failed evaluations instead of successful ones.")
    ] = False,
    limit: Annotated[int | None, typer.Option("--limit", min=1)] = None,
    fmt: FormatOpt = TableFormat.TABLE,
) -> None:
    """Stored evaluation figures, one row per metric (the v_results view; `securitynet sql`
    queries it freely)."""
    from securitynet.catalogue.api import Catalogue

    _quiet_for(fmt)
    with Catalogue() as cat:
        if failed:
            from securitynet.evaluate import list_failures

            failures = list_failures(
                cat, entry_id=entry, attack=attack, variant=variant, limit=limit
            )
            records = [
                {
                    "evaluation_id": f.id,
                    "attack": f.attack,
                    "variant": f.variant,
                    "dataset": f.dataset,
                    "error": f.error,
                    "created_at": f.created_at,
                }
                for f in failures
            ]
            emit_rows(
                records,
                fmt,
                columns=["evaluation_id", "attack", "variant", "dataset", "error", "created_at"],
            )
            return
        rows = cat.results(
            entry_id=entry,
            attack=attack,
            variant=variant,
            metric=metric,
            dataset=dataset,
            source=source,
            limit=limit,
        )
    records = [r.model_dump(mode="json") for r in rows]
    columns = list(records[0]) if records else ["entry_id", "attack", "variant", "metric", "value"]
    table = [
        c
        for c in (
            "entry_id",
            "attack",
            "variant",
            "dataset",
            "metric",
            "value",
            "lower",
            "upper",
            "source",
        )
        if c in columns
    ]
    emit_rows(records, fmt, columns=columns, table_columns=table)
    if fmt is TableFormat.TABLE:
        note(f"{len(records):,} figures")


def register(app: typer.Typer) -> None:
    """Add ``eval accuracy|mia|steal|backdoor|reuse`` and ``results`` to ``app`` (once)."""
    if any(g.name == "eval" for g in app.registered_groups):
        return
    eval_app = typer.Typer(
        help="Evaluate entries: accuracy, membership inference, model stealing, backdoor detection, model reuse.",
        no_args_is_help=True,
    )
    app.add_typer(eval_app, name="eval")
    eval_app.command("accuracy")(eval_accuracy)
    eval_app.command("mia")(eval_mia)
    eval_app.command("steal")(eval_steal)
    eval_app.command("reuse")(eval_reuse)
    eval_app.command("backdoor")(eval_backdoor)
    app.command("results")(results)
