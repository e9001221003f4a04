"""The ORM and the migrations agree; the statistics views answer right; schema/ is current."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from securitynet.catalogue.api import Catalogue
from securitynet.catalogue.engine import current_revision, head_revision, migrate
from securitynet.catalogue.models import Base
from securitynet.catalogue.schemas import render_schemas, stale_schemas
from securitynet.catalogue.stats import summarise
from securitynet.catalogue.textsearch import include_name
from securitynet.resources import resource_dir
from tests.catalogue import sample

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "schema"
VIEWS = (
    "v_entries_per_source",
    "v_entries_per_dataset",
    "v_entries_per_family",
    "v_entries_per_licence",
    "v_accuracy_per_dataset",
    "v_claims",
    "v_training_chain",
    "v_results",
)


def test_the_orm_and_the_migrations_agree(empty_catalogue: Catalogue) -> None:
    engine = empty_catalogue.engine  # migrated to head on first use
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True, "include_name": include_name}),
            Base.metadata,
        )
    assert diff == []


def test_the_views_exist_and_are_not_tables(empty_catalogue: Catalogue) -> None:
    inspector = inspect(empty_catalogue.engine)
    assert set(VIEWS) <= set(inspector.get_view_names())
    assert not [t for t in inspector.get_table_names() if t.startswith("v_")]


def test_migrations_go_down_and_up_again(empty_catalogue: Catalogue) -> None:
    from alembic import command
    from alembic.config import Config

    engine = empty_catalogue.engine
    assert current_revision(engine) == head_revision() == "0008"
    config = Config()
    config.set_main_option("script_location", str(resource_dir("migrations")))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    assert current_revision(engine) == "0001"
    assert not set(VIEWS) & set(inspect(engine).get_view_names())
    migrate(engine)
    assert set(VIEWS) <= set(inspect(engine).get_view_names())


def _view(cat: Catalogue, name: str, order: str) -> pd.DataFrame:
    with cat.engine.connect() as conn:
        return pd.read_sql(text(f"SELECT * FROM {name} ORDER BY {order}"), conn)


def test_entries_per_source_counts_live_and_removed(catalogue: Catalogue) -> None:
    frame = _view(catalogue, "v_entries_per_source", "source").set_index("source")
    assert frame.loc["imgclsmob", ["entries", "with_top1", "datasets", "removed"]].tolist() == [
        5,
        5,
        2,
        0,
    ]
    assert frame.loc["timm", ["entries", "with_top1", "removed"]].tolist() == [3, 2, 1]
    assert frame.loc["hf", ["entries", "with_top1", "datasets"]].tolist() == [1, 0, 0]


def test_entries_per_dataset_and_family(catalogue: Catalogue) -> None:
    per_dataset = _view(catalogue, "v_entries_per_dataset", "dataset")
    assert dict(zip(per_dataset.dataset.fillna("-"), per_dataset.entries, strict=True)) == {
        "CIFAR-10": 4,
        "CIFAR-100": 1,
        "ImageNet-1k": 3,
        "LAION-2B": 1,
        "-": 1,
    }
    per_family = _view(catalogue, "v_entries_per_family", "family").set_index("family")
    assert per_family.loc[
        "resnet", ["entries", "architectures", "datasets", "sources"]
    ].tolist() == [5, 3, 3, 3]


def test_accuracy_per_dataset_matches_pandas(catalogue: Catalogue) -> None:
    view = _view(catalogue, "v_accuracy_per_dataset", "dataset").set_index("dataset")
    cifar10 = view.loc["CIFAR-10"]
    # 94, 95, 96, 97: quartiles interpolated linearly, as pandas does
    assert cifar10[
        ["entries", "top1_min", "top1_q1", "top1_median", "top1_q3", "top1_max", "top1_mean"]
    ].tolist() == pytest.approx([4, 94.0, 94.75, 95.5, 96.25, 97.0, 95.5])
    expected = (
        summarise(catalogue.to_dataframe(), "dataset")
        .dropna(subset=["top1_median"])
        .set_index("dataset")
    )
    for column in ("top1_min", "top1_q1", "top1_median", "top1_q3", "top1_max", "top1_mean"):
        assert view.loc[expected.index, column].tolist() == pytest.approx(expected[column].tolist())
    assert view.loc[expected.index, "entries"].tolist() == expected["with_top1"].tolist()


def test_claims_and_training_chain_views_join_entry_fields(catalogue: Catalogue) -> None:
    claims = _view(catalogue, "v_claims", "claim_id")
    vit = "timm:vit_base_patch16_224.augreg_in21k_ft_in1k"
    row = claims[claims.entry_id == "torchvision:resnet50.IMAGENET1K_V1"].set_index("metric")
    assert row.loc["top5", "value"] == pytest.approx(92.862)
    assert row.loc["top1", ["architecture", "trained_on", "source", "evidence"]].tolist() == [
        "resnet50",
        "ImageNet-1k",
        "torchvision",
        "results table",
    ]
    chain = _view(catalogue, "v_training_chain", "entry_id, position")
    steps = chain[chain.entry_id == vit]
    assert steps[["stage", "dataset", "final_dataset"]].values.tolist() == [
        ["pretrain", "ImageNet-21k", "ImageNet-1k"],
        ["train", "ImageNet-1k", "ImageNet-1k"],
    ]


def test_the_catalogue_doc_describes_every_table_column_and_view() -> None:
    doc = (SCHEMA_DIR / "catalogue.md").read_text(encoding="utf-8")
    missing = []
    for table in Base.metadata.sorted_tables:
        section = re.search(
            rf"^### `{table.name}`\n(.*?)(?=^### |\Z)", doc, re.MULTILINE | re.DOTALL
        )
        if section is None:
            missing.append(table.name)
            continue
        missing += [
            f"{table.name}.{c.name}" for c in table.columns if f"`{c.name}`" not in section.group(1)
        ]
    missing += [v for v in VIEWS if f"### `{v}`" not in doc]
    assert missing == []


def test_the_committed_schemas_are_the_generated_ones() -> None:
    assert stale_schemas(SCHEMA_DIR) == [], "run: python -m securitynet.catalogue.schemas"
    for name, text_ in render_schemas().items():
        assert json.loads(text_)["$schema"].startswith("https://json-schema.org/"), name


def test_every_annotation_file_validates_against_its_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((SCHEMA_DIR / "annotations.schema.json").read_text(encoding="utf-8"))
    files = sorted((ROOT / "annotations").glob("*.yaml"))
    assert files
    for path in files:
        jsonschema.validate(yaml.safe_load(path.read_text(encoding="utf-8")), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"annotator": "x", "items": [{"id": "timm:a", "evidence": "e", "oops": 1}]}, schema
        )


def test_export_rows_validate_against_the_export_schema(catalogue: Catalogue) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from securitynet.catalogue.export import export_rows

    schema = json.loads((SCHEMA_DIR / "export.schema.json").read_text(encoding="utf-8"))
    full_schema = json.loads((SCHEMA_DIR / "export-full.schema.json").read_text(encoding="utf-8"))
    rows = export_rows(catalogue, include_removed=True)
    assert len(rows) == len(sample.RECORDS)
    for row in rows:
        jsonschema.validate(json.loads(json.dumps(row, default=lambda v: v.isoformat())), schema)
    jsonschema.validate(catalogue.get(sample.RECORDS[0].id).model_dump(mode="json"), full_schema)


def _documented_queries() -> list[str]:
    doc = (SCHEMA_DIR / "catalogue.md").read_text(encoding="utf-8")
    return re.findall(r"```sql\n(.*?)```", doc, re.DOTALL)


@pytest.mark.parametrize(
    "query", _documented_queries(), ids=lambda q: q.split("FROM")[1].split()[0]
)
def test_every_documented_example_runs(catalogue: Catalogue, query: str) -> None:
    result = catalogue.sql(query)
    assert result.columns


def test_documented_examples_answer_the_sample(catalogue: Catalogue) -> None:
    fine_tuned = next(q for q in _documented_queries() if "ImageNet-21k" in q)
    assert catalogue.sql(fine_tuned).rows == (("timm:vit_base_patch16_224.augreg_in21k_ft_in1k",),)
    disagree = next(q for q in _documented_queries() if "disagree" in q or "entry_source) > 1" in q)
    assert [(r[0], r[1]) for r in catalogue.sql(disagree).rows] == [("resnet50", 2)]
