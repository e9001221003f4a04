"""The statistics stored at write time are the statistics computed from the entries: for
every grouping, on both engines, after the migration fills them and after each write."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from sqlalchemy import text

from securitynet.catalogue.api import Catalogue
from securitynet.catalogue.stats import STAT_COLUMNS, accuracy_stats, summarise
from securitynet.catalogue.stats_table import (
    GROUPINGS,
    _positions,
    _settle,
    has_statistics,
    read_statistics,
    refresh_statistics,
)
from securitynet.records import AccuracyClaim, DatasetLink, EntryRecord, Stage
from tests.catalogue import sample


def _computed(cat: Catalogue, by: str) -> pd.DataFrame:
    return summarise(cat.to_dataframe(columns=(by, "top1"), ordered=False), by)


def _same(stored: pd.DataFrame, computed: pd.DataFrame, by: str) -> None:
    assert list(stored.columns) == list(computed.columns) == [by, *STAT_COLUMNS]
    assert stored[by].fillna("-").tolist() == computed[by].fillna("-").tolist()  # same order
    for column in STAT_COLUMNS:
        want = computed[column].tolist()
        got = stored[column].tolist()
        assert [None if isinstance(v, float) and math.isnan(v) else pytest.approx(v) for v in want] == [
            None if isinstance(v, float) and math.isnan(v) else v for v in got
        ], column


@pytest.mark.parametrize("by", GROUPINGS)
def test_stored_statistics_are_the_computed_ones(catalogue: Catalogue, by: str) -> None:
    assert has_statistics(catalogue.engine)
    _same(read_statistics(catalogue.engine, by), _computed(catalogue, by), by)
    _same(accuracy_stats(catalogue, by=by), _computed(catalogue, by), by)


def test_the_quartiles_of_a_hand_checked_group(catalogue: Catalogue) -> None:
    cifar10 = read_statistics(catalogue.engine, "dataset").set_index("dataset").loc["CIFAR-10"]
    # 94, 95, 96, 97: interpolated linearly, as pandas and percentile_cont do
    assert cifar10[list(STAT_COLUMNS)].tolist() == pytest.approx(
        [4, 4, 94.0, 94.75, 95.5, 96.25, 97.0, 95.5]
    )


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 10, 101])
def test_streamed_quartiles_match_pandas(n: int) -> None:
    values = sorted((i * 37 % 101) / 3.0 for i in range(n))
    wanted = _positions(n)
    row: dict[str, object] = {"with_top1": n}
    _settle(row, {i: values[i] for i in wanted})
    series = pd.Series(values)
    assert [row["top1_q1"], row["top1_median"], row["top1_q3"]] == pytest.approx(
        [series.quantile(0.25), series.quantile(0.5), series.quantile(0.75)]
    )


def test_filters_that_change_what_counts_are_computed(catalogue: Catalogue) -> None:
    # the stored figures leave removed entries out; asking for them reads the entries
    everything = accuracy_stats(catalogue, by="dataset", include_removed=True).set_index("dataset")
    assert everything.loc["ImageNet-1k", ["entries", "top1_min"]].tolist() == [4, 10.0]
    above = accuracy_stats(catalogue, by="dataset", min_top1=0.0).set_index("dataset")
    assert "LAION-2B" not in above.index  # no top-1 there: min_top1=0 is a filter, not "none"


def test_a_write_through_the_api_refreshes_them(catalogue: Catalogue) -> None:
    before = read_statistics(catalogue.engine, "dataset").set_index("dataset")
    assert before.loc["CIFAR-10", "entries"] == 4
    record = EntryRecord(
        id="local:my-cifar-net",
        architecture="resnet56",
        family="resnet",
        datasets=[DatasetLink(dataset="CIFAR-10", stage=Stage.TRAIN, source="local", evidence="me")],
        claims=[AccuracyClaim(dataset="CIFAR-10", value=99.0, source="local", evidence="me")],
    )
    catalogue.add([record], origin="local")
    after = read_statistics(catalogue.engine, "dataset").set_index("dataset")
    assert after.loc["CIFAR-10", ["entries", "top1_max"]].tolist() == [5, 99.0]
    _same(read_statistics(catalogue.engine, "dataset"), _computed(catalogue, "dataset"), "dataset")


def test_the_view_reads_the_stored_figures(catalogue: Catalogue) -> None:
    with catalogue.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE accuracy_statistics SET top1_median = 12.5 "
                "WHERE grouping = 'dataset' AND value = 'CIFAR-10'"
            )
        )
    with catalogue.engine.connect() as conn:
        median = conn.execute(
            text("SELECT top1_median FROM v_accuracy_per_dataset WHERE dataset = 'CIFAR-10'")
        ).scalar_one()
    assert median == 12.5
    refresh_statistics(catalogue.engine)


def test_the_migration_fills_the_table_from_what_entry_holds(catalogue: Catalogue) -> None:
    from alembic import command
    from alembic.config import Config

    from securitynet.catalogue.engine import migrate
    from securitynet.resources import resource_dir

    want = {by: _computed(catalogue, by) for by in GROUPINGS}
    config = Config()
    config.set_main_option("script_location", str(resource_dir("migrations")))
    with catalogue.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0006")
    with catalogue.engine.connect() as conn:  # the view before 0007, computed from entry
        old = pd.read_sql(text("SELECT * FROM v_accuracy_per_dataset"), conn)
    assert set(old["dataset"].dropna()) >= {"CIFAR-10", "ImageNet-1k"}
    migrate(catalogue.engine)
    for by in GROUPINGS:
        _same(read_statistics(catalogue.engine, by), want[by], by)


def test_an_empty_catalogue_has_none_and_stats_still_answers(empty_catalogue: Catalogue) -> None:
    assert not has_statistics(empty_catalogue.engine)
    assert accuracy_stats(empty_catalogue, by="family").empty
    sample.fill(empty_catalogue)
    assert has_statistics(empty_catalogue.engine)
