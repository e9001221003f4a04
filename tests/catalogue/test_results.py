"""Evaluation results: one row per metric, the v_results view, Catalogue.results, migration 0003."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select, text

from securitynet.catalogue.api import Catalogue
from securitynet.catalogue.engine import current_revision, downgrade, head_revision, migrate
from securitynet.catalogue.models import Dataset, Evaluation, EvaluationMetric, Fact
from securitynet.catalogue.results import replace_evaluations
from securitynet.errors import EntryNotFoundError, InvalidQueryError
from securitynet.records import EvaluationRecord, MetricResult, Purpose

WRN = "imgclsmob:wrn16_10_cifar10"


def test_v_results_gives_one_row_per_figure_with_its_context(catalogue: Catalogue) -> None:
    rows = catalogue.sql(
        "SELECT entry_id, source, dataset, value, lower, upper, trained_on, purpose FROM v_results"
        " WHERE attack = 'mia' AND variant = 'modified-entropy' AND metric = 'auc'"
        " AND NOT removed_upstream ORDER BY entry_id, source"
    ).rows
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("imgclsmob:resnet20_cifar10", "evaluate", "CIFAR-10"),
        ("imgclsmob:resnet56_cifar10", "evaluate", "CIFAR-10"),
        (WRN, "evaluate", "CIFAR-10"),
        (WRN, "securitynet-release", "CIFAR-10"),
    ]
    assert [r[3] for r in rows] == pytest.approx([0.52, 0.56, 0.60, 0.58])
    assert rows[2][4:6] == pytest.approx((0.58, 0.62))
    assert rows[2][6:] == ("CIFAR-10", "benchmark")
    # the removed entry's figure is kept, flagged
    removed = catalogue.sql("SELECT COUNT(*) FROM v_results WHERE removed_upstream").rows
    assert removed == ((2,),)


def test_documented_results_example_answers_the_sample(catalogue: Catalogue) -> None:
    from tests.catalogue.test_schema_and_views import _documented_queries

    per_dataset = next(
        q for q in _documented_queries() if "FROM v_results WHERE attack = 'mia'" in q
    )
    rows = catalogue.sql(per_dataset).rows
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("CIFAR-10", "evaluate", 3),
        ("CIFAR-10", "securitynet-release", 1),
    ]
    assert rows[0][3:] == pytest.approx((0.52, 0.56, 0.60))
    disagree = next(q for q in _documented_queries() if "theirs.value AS published" in q)
    assert catalogue.sql(disagree).rows[0][:2] == (WRN, "mia")


def test_catalogue_results_filters(catalogue: Catalogue) -> None:
    stolen = catalogue.results(attack="model-stealing")
    assert {(r.metric, r.value) for r in stolen} == {("accuracy", 81.5), ("agreement", 0.86)}
    assert {r.source for r in stolen} == {"securitynet-release"}
    aucs = catalogue.results(metric="auc", dataset="cifar10", source="evaluate")
    assert [r.entry_id for r in aucs] == [
        "imgclsmob:resnet20_cifar10",
        "imgclsmob:resnet56_cifar10",
        WRN,
    ]
    assert len(catalogue.results(metric="auc", include_removed=True)) == 5
    assert catalogue.results(entry_id=WRN, source="securitynet-release")[0].value == 0.58
    with pytest.raises(InvalidQueryError):
        catalogue.results(atack="mia")


def test_an_evaluation_round_trips_with_its_metrics(catalogue: Catalogue) -> None:
    record = EvaluationRecord(
        attack="mia",
        variant="lira",
        dataset="MNIST",
        protocol={"members": "train", "non_members": "test"},
        seed=7,
        config_digest="ab" * 32,
        versions={"torch": "2.14.1"},
        device="cpu",
        duration_s=3.5,
        metrics=[
            MetricResult(metric="auc", value=0.7, lower=0.65, upper=0.75),
            MetricResult(metric="tpr_at_1pct_fpr", value=0.04),
        ],
    )
    new_id = catalogue.add_evaluation("imgclsmob:resnet20_cifar100", record)
    found = catalogue.find_evaluation(
        "imgclsmob:resnet20_cifar100", attack="mia", config_digest="ab" * 32
    )
    assert found is not None and found.id == new_id
    assert found.metric("auc") == 0.7 and found.metrics[0].upper == 0.75
    assert found.model_dump(exclude={"id", "created_at"}) == record.model_dump(
        exclude={"id", "created_at"}
    )
    assert (
        catalogue.find_evaluation(
            "imgclsmob:resnet20_cifar100", attack="mia", config_digest="0" * 64
        )
        is None
    )
    entry = catalogue.get("imgclsmob:resnet20_cifar100")
    assert [e.metric("auc") for e in entry.evaluations] == [0.7]


def test_an_evaluation_of_an_unknown_entry_is_refused(catalogue: Catalogue) -> None:
    with pytest.raises(EntryNotFoundError):
        catalogue.add_evaluation("timm:nope", EvaluationRecord(attack="mia"))


def test_an_unknown_evaluated_dataset_gets_its_row(catalogue: Catalogue) -> None:
    catalogue.add_evaluation(
        WRN,
        EvaluationRecord(
            attack="mia", dataset="my-private-set", metrics=[MetricResult(metric="auc", value=0.5)]
        ),
    )
    with catalogue.session() as s:
        row = s.get(Dataset, "my-private-set")
        assert row is not None and not row.canonical


def test_deleting_an_evaluation_deletes_its_metrics(catalogue: Catalogue) -> None:
    with catalogue.session() as s, s.begin():
        before = s.scalar(select(func.count()).select_from(EvaluationMetric))
        replace_evaluations(s, [], source="securitynet-release")
        after = s.scalar(select(func.count()).select_from(EvaluationMetric))
        assert before is not None and after == before - 4
        sources = set(s.scalars(select(Evaluation.source)))
    assert sources == {"evaluate"}


def test_replacing_keeps_other_sources(catalogue: Catalogue) -> None:
    new = EvaluationRecord(
        attack="mia",
        variant="modified-entropy",
        source="securitynet-release",
        dataset="CIFAR-10",
        metrics=[MetricResult(metric="auc", value=0.61)],
    )
    with catalogue.session() as s, s.begin():
        replace_evaluations(s, [(WRN, new)], source="securitynet-release", entry_ids=[WRN])
    release = catalogue.results(entry_id=WRN, source="securitynet-release")
    assert [(r.attack, r.value) for r in release] == [("mia", 0.61)]
    assert [r.value for r in catalogue.results(entry_id=WRN, source="evaluate", metric="auc")] == [
        0.6
    ]
    # the other entry's release figures are untouched
    assert len(catalogue.results(attack="model-stealing")) == 2


def test_metric_records_refuse_what_cannot_be_a_figure() -> None:
    with pytest.raises(ValidationError):
        MetricResult(metric="auc", value=0.5, lower=0.6)
    with pytest.raises(ValidationError):
        MetricResult(metric="auc", value=float("nan"))
    with pytest.raises(ValidationError):
        EvaluationRecord(
            attack="mia",
            metrics=[MetricResult(metric="auc", value=0.5), MetricResult(metric="auc", value=0.6)],
        )


def test_entry_annotations_are_columns_and_facts(catalogue: Catalogue) -> None:
    assert catalogue.sql("SELECT id FROM entry WHERE purpose = 'security'").rows == (
        ("hf:someone/mystery-net",),
    )
    assert catalogue.sql("SELECT id, venue FROM entry WHERE year = 2016").rows == ((WRN, "BMVC"),)
    entry = catalogue.get(WRN)
    assert (entry.purpose, entry.venue, entry.year) == (Purpose.BENCHMARK, "BMVC", 2016)
    with catalogue.session() as s:
        facts = set(s.execute(select(Fact.key, Fact.source).where(Fact.entry_id == WRN)))
    assert {("purpose", "imgclsmob"), ("year", "imgclsmob")} <= facts


def test_migration_0003_moves_metrics_json_into_rows_and_back(empty_catalogue: Catalogue) -> None:
    engine = empty_catalogue.engine
    downgrade(engine, "0002")
    assert current_revision(engine) == "0002"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO entry (id, source, name, task, tags, first_seen, last_seen, removed_upstream)"
                " VALUES ('timm:a', 'timm', 'a', 'image-classification', '[]', :t, :t, :f)"
            ),
            {"t": "2026-12-01 00:00:00", "f": False},
        )
        conn.execute(
            text(
                "INSERT INTO evaluation (entry_id, attack, config, data_protocol, metrics, versions,"
                " status, created_at) VALUES ('timm:a', 'mia', '{}', '{\"members\": \"train\"}',"
                " :m, '{}', 'ok', :t)"
            ),
            {
                "m": '{"auc": 0.61, "tpr": {"value": 0.02, "lower": 0.01, "upper": 0.03},'
                ' "roc": "roc.png"}',
                "t": "2026-12-01 00:00:00",
            },
        )
    migrate(engine, "0003")
    with empty_catalogue.session() as s:
        moved = sorted(
            s.execute(
                select(EvaluationMetric.metric, EvaluationMetric.value, EvaluationMetric.upper)
            )
        )
        evaluation = s.scalars(select(Evaluation)).one()
        assert (evaluation.source, evaluation.protocol) == ("evaluate", {"members": "train"})
    assert moved == [("auc", 0.61, None), ("tpr", 0.02, 0.03)]
    downgrade(engine, "0002")
    with engine.connect() as conn:
        back = conn.execute(text("SELECT metrics FROM evaluation")).scalar_one()
    import json

    back = json.loads(back) if isinstance(back, str) else back
    assert back == {"auc": 0.61, "tpr": {"value": 0.02, "lower": 0.01, "upper": 0.03}}
    migrate(engine)
    assert current_revision(engine) == head_revision()


def test_upgrading_a_filled_sqlite_catalogue_past_0003_keeps_its_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalogue.db'}"
    with Catalogue(url, upgrade=False) as cat:
        migrate(cat.engine, "0003")
        with cat.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO entry (id, source, name, task, tags, first_seen, last_seen,"
                    " removed_upstream) VALUES ('timm:a', 'timm', 'a', 'image-classification',"
                    " '[]', '2026-12-01 00:00:00', '2026-12-01 00:00:00', 0)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO evaluation (entry_id, attack, source, config, protocol, versions,"
                    " status, created_at) VALUES ('timm:a', 'mia', 'evaluate', '{}', '{}', '{}',"
                    " 'ok', '2026-12-01 00:00:00')"
                )
            )
        migrate(cat.engine)
        with cat.engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM evaluation")).scalar_one() == 1
