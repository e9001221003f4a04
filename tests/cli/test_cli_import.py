"""The README's import commands through the CLI: ``securitynet import securitynet-release PATH``,
``securitynet import robustbench DIR``, and the v_results query."""

from __future__ import annotations

import json
from pathlib import Path

from securitynet.catalogue.api import Catalogue
from tests.catalogue.test_import_release import SMALL
from tests.cli.conftest import Invoke

MODEL_INFO = {
    "link": "https://arxiv.org/abs/1905.13736",
    "name": "Unlabeled Data Improves Adversarial Robustness",
    "authors": "Yair Carmon, Aditi Raghunathan, Ludwig Schmidt, Percy Liang, John C. Duchi",
    "additional_data": True,
    "number_forward_passes": 1,
    "dataset": "cifar10",
    "venue": "NeurIPS 2019",
    "architecture": "WideResNet-28-10",
    "eps": "8/255",
    "clean_acc": "89.69",
    "reported": "62.5",
    "autoattack_acc": "59.53",
}


def test_import_release_then_query_results(
    cli: Invoke, tmp_path: Path, catalogue_url: str
) -> None:
    doc = tmp_path / "README.MD"
    doc.write_text(SMALL, encoding="utf-8")
    run = cli("import", "securitynet-release", str(doc))
    assert run.code == 0, run.stderr
    assert run.stdout.startswith("securitynet-release: 4 added")
    assert "not attached: imgclsmob:bn_vgg11, imgclsmob:resnet20_cifar10" in run.stderr
    assert "hint: sync their sources first" in run.stderr
    sql = (
        "SELECT dataset, AVG(value) AS auc FROM v_results WHERE attack = 'mia' AND metric = 'auc'"
        " GROUP BY dataset"
    )
    if catalogue_url.startswith("sqlite"):
        query = cli("sql", sql, "--format", "json")
        assert json.loads(query.stdout) == [{"dataset": "CIFAR-10", "auc": 0.54}]
    else:  # securitynet sql refuses the superuser role the PostgreSQL tests run as
        from sqlalchemy import text

        with Catalogue(catalogue_url) as cat, cat.engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(text(sql))]
        assert [(d, round(v, 6)) for d, v in rows] == [("CIFAR-10", 0.54)]
    as_json = cli("import", "securitynet-release", str(doc), "--json")
    assert json.loads(as_json.stdout)["unchanged"] == 4


def test_import_robustbench_folder_and_offline_url(cli: Invoke, tmp_path: Path) -> None:
    folder = tmp_path / "model_info" / "cifar10" / "Linf"
    folder.mkdir(parents=True)
    (folder / "Carmon2019Unlabeled.json").write_text(json.dumps(MODEL_INFO), encoding="utf-8")
    run = cli("import", "robustbench", str(tmp_path / "model_info"))
    assert run.code == 0 and run.stdout.startswith("robustbench: 1 added"), run.stderr
    shown = cli("show", "robustbench:cifar10/Linf/Carmon2019Unlabeled", "--format", "json")
    assert json.loads(shown.stdout)["top1"] == 89.69
    offline = cli("import", "robustbench", "--offline")
    assert offline.code == 1
    assert offline.stderr.startswith("error: robustbench:")
    missing = cli("import", "robustbench", str(tmp_path / "nowhere"))
    assert missing.code == 1 and "no folder or file" in missing.stderr
