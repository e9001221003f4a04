"""What users type: parameter counts, sort keys, and facet values that match nothing."""

from __future__ import annotations

import pytest

from securitynet.catalogue.api import Catalogue, make_filter
from securitynet.catalogue.filters import check_facets, parse_count, parse_sort
from securitynet.errors import InvalidQueryError


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("25M", 25_000_000),
        ("25m", 25_000_000),
        ("1.5B", 1_500_000_000),
        ("1.5G", 1_500_000_000),
        ("300k", 300_000),
        ("25_557_032", 25_557_032),
        ("2.5e7", 25_000_000),
        (" 86.6 M ", 86_600_000),
        ("0", 0),
    ],
)
def test_parse_count(text: str, count: int) -> None:
    assert parse_count(text) == count


@pytest.mark.parametrize("text", ["", "M", "25MB", "-5", "lots", "1.5.5M"])
def test_parse_count_refuses_nonsense(text: str) -> None:
    with pytest.raises(InvalidQueryError, match="not a parameter count") as info:
        parse_count(text)
    assert "25M" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("top1", ("top1", True)),
        ("-top1", ("top1", True)),
        ("+top1", ("top1", False)),
        ("params", ("params", True)),
        ("+params", ("params", False)),
        ("id", ("id", False)),
        ("-name", ("name", True)),
    ],
)
def test_parse_sort(spec: str, expected: tuple[str, bool]) -> None:
    assert parse_sort(spec) == expected


def test_parse_sort_names_the_keys() -> None:
    with pytest.raises(InvalidQueryError, match="unknown sort key") as info:
        parse_sort("speed")
    assert "top1" in (info.value.hint or "")


def test_sorting_by_params_both_ways(catalogue: Catalogue) -> None:
    key, descending = parse_sort("+params")
    ascending = [
        e.params for e in catalogue.search(sort=key, descending=descending, dataset="CIFAR-10")
    ]
    assert ascending == sorted(ascending)
    key, descending = parse_sort("params")
    assert [
        e.params for e in catalogue.search(sort=key, descending=descending, dataset="CIFAR-10")
    ] == ascending[::-1]


def test_check_facets_names_close_values(catalogue: Catalogue) -> None:
    with catalogue.session() as session:
        check_facets(session, make_filter(dataset="cifar10", family="ResNet"))  # known: no error
        with pytest.raises(InvalidQueryError, match="no entry has family 'resnt'") as info:
            check_facets(session, make_filter(family="resnt"))
        assert "resnet" in (info.value.hint or "")
        with pytest.raises(InvalidQueryError, match="no entry has licence 'zzz'") as info:
            check_facets(session, make_filter(licence="zzz"))
        assert "stats --by licence" in (info.value.hint or "")


@pytest.mark.parametrize("descending", [True, False])
def test_entries_without_the_sort_value_come_last_either_way(
    catalogue: Catalogue, descending: bool
) -> None:
    values = [e.top1 for e in catalogue.search(sort="top1", descending=descending)]
    present = [v for v in values if v is not None]
    assert values == [*present, None, None]
    assert present == sorted(present, reverse=descending)
