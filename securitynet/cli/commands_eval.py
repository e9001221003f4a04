"""Evaluation commands: ``eval accuracy|mia|steal|reuse`` and ``results``. Thin: options in,
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
            help="all, metric, learned, robust, lira, or names: confidence,mlp_top3,...",
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
    from securitynet.evaluate import DataSpec, MembershipRequest, plot_outcomes

    _quiet_for(fmt)
    config = MembershipConfig(
        attacks=[attacks],
        seed=seed,
        bootstrap=bootstrap,
        pgd=PGDConfig(eps=eps, steps=pgd_steps),
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
    surrogate: Annotated[str, typer.Option("--surrogate", help="small_cnn.")] = "small_cnn",
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 20,
    seeds: Annotated[
        int, typer.Option("--seeds", min=1, max=20, help="Repeats; the median is stored.")
    ] = 1,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    max_test: Annotated[
        int | None, typer.Option("--max-test", min=1, help="Score on a seeded test sample.")
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
    """Steal each entry (Knockoff style): query it within each budget, train a surrogate on
    its answers, store the surrogate's accuracy and its agreement with the entry."""
    from pydantic import ValidationError

    from securitynet.attacks.stealing import StealingConfig
    from securitynet.errors import AttackError
    from securitynet.evaluate import DataSpec, StealingRequest

    _quiet_for(fmt)
    try:
        config = StealingConfig.model_validate(
            {
                "budgets": [int(b) for b in budget.split(",") if b.strip()],
                "labels": labels,
                "top_k": top_k,
                "surrogate": surrogate,
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
    report = _run(request, entries, where, executor, address, force)
    _emit(report, fmt)
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
    """Add ``eval accuracy|mia|steal|reuse`` and ``results`` to ``app`` (once)."""
    if any(g.name == "eval" for g in app.registered_groups):
        return
    eval_app = typer.Typer(
        help="Evaluate entries: accuracy, membership inference, model stealing, model reuse.",
        no_args_is_help=True,
    )
    app.add_typer(eval_app, name="eval")
    eval_app.command("accuracy")(eval_accuracy)
    eval_app.command("mia")(eval_mia)
    eval_app.command("steal")(eval_steal)
    eval_app.command("reuse")(eval_reuse)
    app.command("results")(results)
