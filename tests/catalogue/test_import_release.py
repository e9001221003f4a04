"""``securitynet import securitynet-release`` on the real release (../shared), checked against
figures computed here from the markdown independently (pandas), and on small documents
built in the test (both databases)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from securitynet.annotate.datasets import dataset_name
from securitynet.catalogue.api import Catalogue
from securitynet.cli.app import main
from securitynet.errors import SourceUnavailableError
from securitynet.records import Purpose
from securitynet.settings import get_settings

RELEASE = "fixtures/securitynet/Database-README.MD"

MEDIAN_SQL = """
WITH ranked AS (
    SELECT dataset, value,
           ROW_NUMBER() OVER (PARTITION BY dataset ORDER BY value) AS rn,
           COUNT(*) OVER (PARTITION BY dataset) AS n
    FROM {source} WHERE {where}
)
SELECT dataset, MAX(n) AS models, AVG(value) AS median
FROM ranked WHERE rn IN ((n + 1) / 2, (n + 2) / 2) GROUP BY dataset ORDER BY dataset
"""


def _release_frame(text: str) -> pd.DataFrame:
    """The benchmark and security tables, read by pandas (not by the importer's parser)."""
    frames = []
    for title in ("## Benchmark Models", "## Security Research Models"):
        block = text.split(title, 1)[1].split("\n## ", 1)[0].strip()
        lines = [ln for i, ln in enumerate(block.splitlines()) if i != 1]
        frame = pd.read_csv(io.StringIO("\n".join(lines)), sep="|", skipinitialspace=True)
        frame = frame.loc[:, ~frame.columns.str.startswith("Unnamed")]
        frame.columns = [c.strip() for c in frame.columns]
        frames.append(frame.apply(lambda col: col.str.strip() if col.dtype == object else col))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def imported(
    tmp_path_factory: pytest.TempPathFactory, shared_dir: Path
) -> Iterator[tuple[str, object]]:
    """A SQLite catalogue with imgclsmob synced and the release imported (once per module)."""
    home = tmp_path_factory.mktemp("release-home")
    url = f"sqlite:///{home / 'catalogue.db'}"
    settings = get_settings(home=home, database_url=url)
    with Catalogue(settings=settings) as cat:
        cat.sync("imgclsmob")
        summary = cat.import_from("securitynet-release", str(shared_dir / RELEASE))
    yield url, summary


def _sql(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], query: str
) -> list[dict[str, object]]:
    monkeypatch.setenv("SECURITYNET_DATABASE_URL", url)
    try:
        main(["sql", query, "--format", "json"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    return list(json.loads(capsys.readouterr().out))


def test_all_263_imgclsmob_rows_attach(imported: tuple[str, object]) -> None:
    _url, summary = imported
    assert summary.attached == 263 and summary.missing == []  # type: ignore[attr-defined]
    # 437 + 92 model rows, 263 of them imgclsmob's; 102 projects
    assert summary.added == 437 + 92 - 263 + 102  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("column", "source", "where", "scale"),
    [
        ("Test Accuracy", "v_claims", "source = 'securitynet-release' AND split = 'test'", 100.0),
        (
            "M_entropy AUC",
            "v_results",
            "attack = 'mia' AND variant = 'modified-entropy' AND metric = 'auc'",
            1.0,
        ),
    ],
)
def test_per_dataset_medians_through_sql_equal_the_releases(
    imported: tuple[str, object],
    shared_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    column: str,
    source: str,
    where: str,
    scale: float,
) -> None:
    url, _ = imported
    frame = _release_frame((shared_dir / RELEASE).read_text(encoding="utf-8"))
    values = pd.to_numeric(frame[column], errors="coerce").replace(0, float("nan")) * scale
    expected = (
        pd.DataFrame({"dataset": frame["Data Name"].map(dataset_name), "value": values})
        .dropna()
        .groupby("dataset")["value"]
        .agg(["median", "count"])
    )
    rows = _sql(url, monkeypatch, capsys, MEDIAN_SQL.format(source=source, where=where))
    got = {r["dataset"]: (r["median"], r["models"]) for r in rows}
    assert sorted(got) == sorted(expected.index)
    for dataset, (median, count) in expected.iterrows():
        assert got[dataset][1] == count, dataset
        assert got[dataset][0] == pytest.approx(median, rel=1e-9), dataset
    assert len(got) >= 5  # the AUCs exist for five data sets, test accuracy for 22


def test_zeros_are_missing_and_repeats_get_stable_ids(
    imported: tuple[str, object],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, _ = imported
    # the first row of the file: train accuracy 0 (missing), test 0.731544, no AUCs
    first = "securitynet:adrenalmnist3d/resnet18_acs_1.pth"
    claims = _sql(
        url, monkeypatch, capsys, f"SELECT split, value FROM v_claims WHERE entry_id = '{first}'"
    )
    assert claims == [{"split": "test", "value": pytest.approx(73.1544)}]
    figures = _sql(
        url,
        monkeypatch,
        capsys,
        f"SELECT attack, metric FROM v_results WHERE entry_id = '{first}' ORDER BY metric",
    )
    assert [(f["attack"], f["metric"]) for f in figures] == [
        ("model-stealing", "accuracy"),
        ("model-stealing", "agreement"),
    ]
    assert _sql(
        url, monkeypatch, capsys, "SELECT COUNT(*) AS n FROM v_results WHERE value = 0"
    ) == [{"n": 0}]
    # resnet_periodic_cosine_eps8_wd1e-3_max16_100 on CIFAR-10 appears more than once
    repeats = _sql(
        url,
        monkeypatch,
        capsys,
        "SELECT id FROM entry WHERE id LIKE 'securitynet:CIFAR-10/resnet_periodic_cosine_eps8_wd1e-3_max16_100%' ORDER BY id",
    )
    ids = [r["id"] for r in repeats]
    assert ids[:2] == [
        "securitynet:CIFAR-10/resnet_periodic_cosine_eps8_wd1e-3_max16_100",
        "securitynet:CIFAR-10/resnet_periodic_cosine_eps8_wd1e-3_max16_100~2",
    ]


def test_entries_carry_the_release_annotations(imported: tuple[str, object]) -> None:
    url, _ = imported
    with Catalogue(url) as cat:
        entry = cat.get("securitynet:CIFAR-10/resnet_periodic_cosine_eps8_wd1e-3_max16_100")
        assert (entry.purpose, entry.venue, entry.venue_type, entry.year) == (
            Purpose.SECURITY,
            "NeurIPS",
            "ML",
            2020,
        )
        assert (entry.dataset, entry.num_classes, entry.train_size) == ("CIFAR-10", 10, 50000)
        assert entry.top1 == pytest.approx(80.3)  # the test accuracy, not the train one
        facts = {f.key: f.value for f in entry.facts}
        assert facts["weights_status"] == "not resolved" and facts["num_authors"] == 5
        # an imgclsmob entry keeps its own figures and gains the release's beside them
        resnet20 = cat.get("imgclsmob:resnet20_cifar10")
        sources = {c.source for c in resnet20.claims}
        assert sources == {"imgclsmob", "securitynet-release"}
        assert resnet20.purpose is Purpose.BENCHMARK
        vgg = cat.get("imgclsmob:bn_vgg11")
        assert any(c.source == "securitynet-release" for c in vgg.claims)
        assert cat.count(source="securitynet") == 437 + 92 - 263 + 102
        project = cat.get("securitynet:projects/hustvl/Vim")
        assert project.upstream_url == "https://github.com/hustvl/Vim?tab=readme-ov-file"
        assert project.year == 2024 and project.venue == "ICML"


SMALL = """# SecurityNet Database
## Benchmark Models
| Model Name | Model Type | Data Name | Data Category | Num Class | Training Size | Train Accuracy | Test Accuracy | Overfit Gap | Model Stealing Accuracy | Model Stealing Agreement | Correct Auc | M_entropy AUC | Wrn Accuracy | Wrn Agree | ImgNet Accuracy | ImgNet Agree | Conference | Conference Type | Year | Country | Num Authors | Purpose | Paper Link | Weights |
|:--|:--|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|:--|:--|--:|:--|--:|:--|:--|:--|
| net_a | resnet | CIFAR-10 | natural | 10 | 50000 | 0.99 | 0.9 | 0.09 | 0.8 | 0.85 | 0.55 | 0.6 | 0 | 0 | 0 | 0 | CVPR | CV | 2019 | USA | 3 | benchmark | [Link](https://arxiv.org/abs/1) | [Link](https://example.org/a) |
| net_a | resnet | CIFAR-10 | natural | 10 | 50000 | 0 | 0.8 | -0.8 | nan | nan | 0 | 0 | 0.7 | 0.75 | 0 | 0 | CVPR | CV | 2019 | USA | 3 | benchmark | [Link](https://arxiv.org/abs/1) | [Link](https://example.org/a) |
| resnet20_cifar10 | resnet | CIFAR-10 | natural | 10 | 50000 | 0.98 | 0.92 | 0.06 | 0.7 | 0.8 | 0.52 | 0.54 | 0 | 0 | 0 | 0 | arXiv | arXiv | 2018 | Russia | 1 | benchmark | | [Link](https://github.com/osmr/imgclsmob) |
| vgg11_bn | vgg | ImageNet1k | natural | 1000 | 1281167 | 0.8 | 0.7 | 0.1 | 0.5 | 0.6 | 0.51 | 0.52 | 0 | 0 | 0 | 0 | arXiv | arXiv | 2018 | Russia | 1 | benchmark | | [Link](https://github.com/osmr/imgclsmob) |

## Security Research Models
| Model Name | Model Type | Data Name | Data Category | Num Class | Training Size | Train Accuracy | Test Accuracy | Overfit Gap | Model Stealing Accuracy | Model Stealing Agreement | Correct Auc | M_entropy AUC | Conference | Conference Type | Year | Country | Num Authors | Purpose | Paper Link | Weights |
|:--|:--|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|:--|:--|--:|:--|--:|:--|:--|:--|
| net_a | resnet | CIFAR-10 | natural | 10 | 50000 | 0.9 | 0.85 | 0.05 | 0.6 | 0.7 | 0.51 | 0.5 | CCS | Security | 2021 | Germany | 4 | security | [Link](https://arxiv.org/abs/2) | [Link](https://github.com/o/r/tree/main) |

## New Models
| Title | Conference | Conference Type | Year | Paper Link | Weights | Note |
|:--|:--|:--|--:|:--|:--|:--|
| A Project | ICML | ML | 2024 | [Paper](https://arxiv.org/abs/3) | [Link](https://github.com/owner/proj.git) | no model |
"""


def test_a_small_release_on_both_databases(
    catalogue: Catalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sample catalogue holds imgclsmob:resnet20_cifar10 but not imgclsmob:bn_vgg11."""
    doc = tmp_path / "README.MD"
    doc.write_text(SMALL, encoding="utf-8")
    summary = catalogue.import_from("securitynet-release", str(doc))
    assert (summary.added, summary.attached, summary.missing) == (4, 1, ["imgclsmob:bn_vgg11"])
    ids = [e.id for e in catalogue.search(source="securitynet", sort="id", descending=False)]
    assert ids == [
        "securitynet:CIFAR-10/net_a",
        "securitynet:CIFAR-10/net_a~2",
        "securitynet:CIFAR-10/net_a~3",
        "securitynet:projects/owner/proj",
    ]
    second = catalogue.get("securitynet:CIFAR-10/net_a~2")
    assert [(c.split, c.value) for c in second.claims] == [("test", 80.0)]
    assert catalogue.get("securitynet:CIFAR-10/net_a~3").purpose is Purpose.SECURITY
    figures = {
        (r.entry_id, r.variant, r.metric): r.value
        for r in catalogue.results(source="securitynet-release")
    }
    assert figures == {
        ("securitynet:CIFAR-10/net_a", "default", "accuracy"): 80.0,
        ("securitynet:CIFAR-10/net_a", "default", "agreement"): 0.85,
        ("securitynet:CIFAR-10/net_a", "correctness", "auc"): 0.55,
        ("securitynet:CIFAR-10/net_a", "modified-entropy", "auc"): 0.6,
        ("securitynet:CIFAR-10/net_a~2", "wrn-surrogate", "accuracy"): 70.0,
        ("securitynet:CIFAR-10/net_a~2", "wrn-surrogate", "agreement"): 0.75,
        ("imgclsmob:resnet20_cifar10", "default", "accuracy"): 70.0,
        ("imgclsmob:resnet20_cifar10", "default", "agreement"): 0.8,
        ("imgclsmob:resnet20_cifar10", "correctness", "auc"): 0.52,
        ("imgclsmob:resnet20_cifar10", "modified-entropy", "auc"): 0.54,
        ("securitynet:CIFAR-10/net_a~3", "default", "accuracy"): 60.0,
        ("securitynet:CIFAR-10/net_a~3", "default", "agreement"): 0.7,
        ("securitynet:CIFAR-10/net_a~3", "correctness", "auc"): 0.51,
        ("securitynet:CIFAR-10/net_a~3", "modified-entropy", "auc"): 0.5,
    }
    # the sample's own evaluations are untouched; the sample's old release figures are replaced
    assert len(catalogue.results(source="evaluate", metric="auc")) == 3
    resnet20 = catalogue.get("imgclsmob:resnet20_cifar10")
    assert sorted((c.source, c.split) for c in resnet20.claims) == [
        ("imgclsmob", "validation"),
        ("securitynet-release", "test"),
        ("securitynet-release", "train"),
    ]
    assert resnet20.top1 == 94.0  # imgclsmob's own figure stays the merged one
    # importing again changes nothing and counts nothing twice
    again = catalogue.import_from("securitynet-release", str(doc))
    assert (again.added, again.unchanged) == (0, 4)
    assert len(catalogue.results(source="securitynet-release")) == len(figures)
    assert len(catalogue.get("imgclsmob:resnet20_cifar10").claims) == 3
    # a release without a row marks its entry removed, never deletes it
    doc.write_text(
        SMALL.replace("| A Project |", "| Another Project |").replace("owner/proj.git", "x/y"),
        encoding="utf-8",
    )
    third = catalogue.import_from("securitynet-release", str(doc))
    assert third.removed == 1 and third.added == 1
    assert catalogue.get("securitynet:projects/owner/proj").removed_upstream


def test_offline_a_url_is_refused_with_a_hint(
    monkeypatch: pytest.MonkeyPatch, catalogue: Catalogue
) -> None:
    monkeypatch.setenv("SECURITYNET_OFFLINE", "1")
    with pytest.raises(SourceUnavailableError) as err:
        Catalogue(catalogue.url).import_from("securitynet-release")
    assert "raw.githubusercontent.com/TrustAIRLab/SecurityNet/main/Database/README.MD" in str(
        err.value
    )
    assert err.value.hint
