"""Model-card annotation: synthetic cards for each rule, then the 120 real cards against a
hand-labelled reading of them (hf_cards_truth.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from securitynet.annotate.cards import UNKNOWN_DATASET, card_needs_body, parse_card
from securitynet.annotate.figures import metric_of, to_percent
from securitynet.records import ClaimKind, Metric, Stage

TRUTH = yaml.safe_load((Path(__file__).parent / "hf_cards_truth.yaml").read_text())

TRAINER_CARD = """---
license: apache-2.0
tags:
- generated_from_trainer
datasets:
- imagefolder
metrics:
- accuracy
model-index:
- name: vit-beans
  results:
  - task:
      name: Image Classification
      type: image-classification
    dataset:
      name: beans
      type: beans
      split: validation
    metrics:
    - name: Accuracy
      type: accuracy
      value: 0.9787234042553191
---

<!-- This model card has been generated automatically according to the information the Trainer had access to. -->

# vit-beans

This model is a fine-tuned version of [google/vit-base-patch16-224-in21k](https://huggingface.co/google/vit-base-patch16-224-in21k) on the beans dataset.
It achieves the following results on the evaluation set:
- Loss: 0.0857
- Accuracy: 0.9787

### Training results

| Training Loss | Epoch | Step | Validation Loss | Accuracy |
|:-------------:|:-----:|:----:|:---------------:|:--------:|
| 0.2616        | 1.0   | 130  | 0.2185          | 0.9624   |
"""


def claims(annotation, metric=Metric.TOP1):  # type: ignore[no-untyped-def]
    return [c for c in annotation.claims if c.metric is metric]


# --- values and names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "percent", "expected"),
    [
        (0.9787, False, 97.87),
        (1.0, False, 100.0),
        ("0.915", False, 91.5),
        ("94.4175", False, 94.4175),  # already percent: stays
        ("97.3%", False, 97.3),
        ("0.5", True, 0.5),  # a "(%)" column: 0.5 percent, not 50
        ("[]", False, None),
        ([], False, None),
        ("n/a", False, None),
        (-3, False, None),
        (140, False, None),
        (True, False, None),
    ],
)
def test_to_percent(raw: object, percent: bool, expected: float | None) -> None:
    assert to_percent(raw, percent=percent) == expected


def test_metric_names() -> None:
    assert metric_of("Accuracy") is Metric.TOP1
    assert metric_of("eval_accuracy") is Metric.TOP1
    assert metric_of("Top1 Acc(%)") is Metric.TOP1
    assert metric_of("Acc@5") is Metric.TOP5
    assert metric_of("F1 Macro") is None
    assert metric_of("Validation Loss") is None
    assert metric_of("balanced accuracy") is None


# --- model-index ------------------------------------------------------------------------------


def test_trainer_card_one_claim_with_evidence_and_chain() -> None:
    a = parse_card(TRAINER_CARD, repo_id="someone/vit-beans")
    (claim,) = claims(a)  # the body's rounded 0.9787 is the same claim; the epoch table is a log
    assert claim.value == pytest.approx(97.872340)
    assert (
        claim.dataset == "Beans" and claim.split == "validation" and claim.kind is ClaimKind.CLAIMED
    )
    assert "model-index" in (claim.evidence or "") and "huggingface_hub" in (claim.evidence or "")
    assert [(d.dataset, d.stage) for d in a.datasets] == [
        ("ImageNet-21k", Stage.PRETRAIN),
        ("Beans", Stage.TRAIN),
    ]
    assert a.datasets[0].evidence == "base model google/vit-base-patch16-224-in21k (name)"
    assert [b.id for b in a.base_models] == ["google/vit-base-patch16-224-in21k"]
    assert a.licence == "apache-2.0"
    assert a.errors == []


def test_model_index_the_library_refuses_is_read_raw() -> None:
    card = """---
model-index:
- name: housing-categories
  results:
  - task:
      name: Image Classification
      type: image-classification
    metrics:
      - name: Accuracy
        type: accuracy
        value: 0.875
---
# housing-categories
"""
    a = parse_card(card, repo_id="Albe/housing-categories")
    (claim,) = a.claims
    assert claim.value == 87.5 and claim.dataset == UNKNOWN_DATASET
    assert "raw YAML; huggingface_hub refused it" in (claim.evidence or "")


def test_legacy_model_index_key_with_singular_metric() -> None:
    card = """---
model_index:
- name: m
  results:
  - task: {name: Image Classification, type: image-classification}
    dataset: {name: beans, type: beans}
    metric: {name: Accuracy, type: accuracy, value: 0.5789473684210527}
---
"""
    (claim,) = parse_card(card, repo_id="o/m").claims
    assert claim.value == pytest.approx(57.894737) and claim.dataset == "Beans"
    assert "legacy key model_index" in (claim.evidence or "")


def test_verified_result_is_a_measurement_on_its_split() -> None:
    card = """---
model-index:
- name: m
  results:
  - task: {type: image-classification}
    dataset: {name: cifar10, type: cifar10, split: test}
    metrics:
    - {type: accuracy, value: 0.9512, verified: true}
---
"""
    (claim,) = parse_card(card, repo_id="o/m").claims
    assert (
        claim.kind is ClaimKind.MEASURED and claim.split == "test" and claim.dataset == "CIFAR-10"
    )


@pytest.mark.parametrize(
    ("front", "message"),
    [
        ("model-index: []", "empty model-index"),
        (
            "model-index:\n- name: m\n  results:\n  - task: {type: x}\n    dataset: {name: d, type: d}\n    metrics:\n    - {type: accuracy, value: []}",
            "is not a number",
        ),
        ("license: [unclosed", "not valid YAML"),
        ("- just\n- a list", "not a mapping"),
    ],
)
def test_bad_metadata_is_an_error_not_a_crash(front: str, message: str) -> None:
    a = parse_card(
        f"---\n{front}\n---\n# body\nIt achieves the following results on the evaluation set:\n- Accuracy: 0.9\n",
        repo_id="o/m",
    )
    assert any(message in e for e in a.errors), a.errors
    assert [c.value for c in claims(a)] == [90.0]  # the body still counts


def test_card_without_front_matter() -> None:
    a = parse_card("# A model\n\nTop-1 accuracy: 76.1% on ImageNet.\n", repo_id="o/m")
    assert a.metadata == {} and a.errors == []
    assert [(c.value, c.dataset) for c in a.claims] == [(76.1, "ImageNet-1k")]


def test_html_page_instead_of_a_card() -> None:
    a = parse_card("<!DOCTYPE html><html><body>Accuracy: 0.99</body></html>", repo_id="o/m")
    assert a.claims == [] and a.errors == ["README.md is an HTML page, not a model card"]


# --- body forms ---------------------------------------------------------------------------------


def test_autotrain_validation_metrics() -> None:
    card = """---
tags: [autotrain, vision]
datasets: [someone/autotrain-data-cats]
---
# Model Trained Using AutoTrain

## Validation Metrics

- Loss: 0.301
- Accuracy: 0.915
- Macro F1: 0.915
"""
    (claim,) = parse_card(card, repo_id="someone/autotrain-cats-1").claims
    assert (claim.value, claim.dataset, claim.split) == (
        91.5,
        "someone/autotrain-data-cats",
        "validation",
    )
    assert "AutoTrain validation metric" in (claim.evidence or "")


def test_timm_style_acc1_lines_stay_in_percent() -> None:
    card = "# resnet-cifar\n\n## Results\n\n- Acc1: 94.4175\n- Acc5: 99.8\n- Loss: 0.2\n"
    a = parse_card(card, repo_id="o/resnet-cifar")
    assert [(c.metric, c.value) for c in a.claims] == [(Metric.TOP1, 94.4175), (Metric.TOP5, 99.8)]


def test_trainer_metrics_log() -> None:
    card = "## Evaluation Metrics\n    epoch = 0.89\n    eval_accuracy           =     0.9894\n    eval_loss = 0.0395\n"
    assert [c.value for c in parse_card(card, repo_id="o/m").claims] == [98.94]


def test_comparison_table_keeps_only_this_models_row() -> None:
    card = """# VAN-Base

| Model     | #Params(M) | Top1 Acc(%) |
| :-------- | :--------: | :---------: |
| VAN-Tiny  |    4.1     |    75.4     |
| VAN-Base  |    26.6    |    82.8     |
| VAN-Large |    44.8    |    83.9     |
"""
    a = parse_card(
        card,
        repo_id="Visual-Attention-Network/VAN-Base-original",
        metadata={"datasets": ["imagenet"]},
    )
    assert [(c.value, c.dataset) for c in a.claims] == [(82.8, "ImageNet-1k")]
    assert sorted(r.reason for r in a.rejected) == [
        "row of another model (VAN-Large)",
        "row of another model (VAN-Tiny)",
    ]


def test_table_row_matched_by_its_hub_link_with_image_size() -> None:
    card = """| model | top1 | top5 | img_size |
|---|---|---|---|
| [convnext_small.fb_in22k_ft_in1k](https://huggingface.co/timm/convnext_small.fb_in22k_ft_in1k) | 85.262 | 97.6 | 288 |
| [convnext_small.fb_in1k](https://huggingface.co/timm/convnext_small.fb_in1k) | 83.142 | 96.434 | 224 |
"""
    a = parse_card(card, repo_id="timm/convnext_small.fb_in1k")
    assert [(c.metric, c.value, c.img_size) for c in a.claims] == [
        (Metric.TOP1, 83.142, 224),
        (Metric.TOP5, 96.434, 224),
    ]


def test_retrieval_table_is_not_classification() -> None:
    card = """**Zero-Shot Text-to-Image Retrieval**

| model | dataset | Top1 | Top5 |
| ---- | ---- | ---- | ---- |
| m | Flickr30k | 58.32% | 82.96% |
"""
    a = parse_card(card, repo_id="o/m")
    assert a.claims == [] and a.rejected[0].reason == "not a classification result table"


@pytest.mark.parametrize(
    "sentence",
    [
        "This makes v1.5 slightly more accurate (~0.5% top1) than v1.",
        "Should predict the material with ~80% accuracy.",
        "It improves top-1 accuracy by 1.2% over the baseline.",
    ],
)
def test_relative_and_approximate_figures_are_not_claims(sentence: str) -> None:
    a = parse_card(f"# m\n\n{sentence}\n", repo_id="o/m")
    assert a.claims == []
    assert a.rejected and a.rejected[0].reason == "approximate or relative figure"


def test_prose_claim_with_its_dataset_and_top5() -> None:
    text = "This model has a top1-accuracy of 80.53% and a top-5 accuracy of 95.16% in the evaluation set of ImageNet"
    a = parse_card(f"# resnet50d\n\n{text}\n", repo_id="sgugger/resnet50d")
    assert [(c.metric, c.value, c.dataset) for c in a.claims] == [
        (Metric.TOP1, 80.53, "ImageNet-1k"),
        (Metric.TOP5, 95.16, "ImageNet-1k"),
    ]


def test_claim_dataset_spelt_like_the_training_set_joins_it() -> None:
    card = TRAINER_CARD.replace(
        "name: beans\n      type: beans", "name: image_folder\n      type: image_folder"
    ).replace("on the beans dataset", "on the imagefolder dataset")
    a = parse_card(card, repo_id="o/m")
    assert a.final_dataset == "imagefolder"
    assert {c.dataset for c in a.claims} == {"imagefolder"}


def test_timm_card_dataset_lines_give_the_chain() -> None:
    card = "# Model card for m\n## Model Details\n- **Dataset:** ImageNet-1k\n- **Pretrain Dataset:** ImageNet-22k\n"
    a = parse_card(card, repo_id="timm/m")
    assert [(d.dataset, d.stage) for d in a.datasets] == [
        ("ImageNet-21k", Stage.PRETRAIN),
        ("ImageNet-1k", Stage.TRAIN),
    ]


def test_metadata_datasets_put_pretraining_scale_first() -> None:
    a = parse_card(
        None,
        repo_id="google/vit-base-patch16-224",
        metadata={"datasets": ["imagenet-1k", "imagenet-21k"]},
    )
    assert [(d.dataset, d.stage) for d in a.datasets] == [
        ("ImageNet-21k", Stage.PRETRAIN),
        ("ImageNet-1k", Stage.TRAIN),
    ]


def test_needs_body() -> None:
    meta = yaml.safe_load(TRAINER_CARD.split("---")[1])
    from_meta = parse_card(None, repo_id="o/m", metadata=meta)
    assert claims(from_meta)  # model-index gives the claim
    assert card_needs_body(
        from_meta, ["generated_from_trainer"]
    )  # but only the body names the base model
    assert not card_needs_body(
        parse_card(None, repo_id="o/m", metadata={**meta, "base_model": "x/y"}),
        ["generated_from_trainer"],
    )
    assert card_needs_body(parse_card(None, repo_id="o/m", metadata={"license": "mit"}))


# --- the 120 real cards -------------------------------------------------------------------------


def _real_cards(shared_dir: Path) -> dict[str, str]:
    folder = shared_dir / "fixtures" / "hf" / "cards"
    return {
        p.stem.replace("--", "/", 1): p.read_text(encoding="utf-8")
        for p in sorted(folder.glob("*.md"))
    }


def test_real_cards_every_labelled_claim_is_found(shared_dir: Path) -> None:
    cards = _real_cards(shared_dir)
    assert len(cards) == 120
    for repo, truth in TRUTH["claims"].items():
        a = parse_card(cards[repo], repo_id=repo)
        top1 = [c.value for c in claims(a)]
        assert any(v == pytest.approx(truth["top1"], abs=1e-3) for v in top1), (repo, top1)
        if "top5" in truth:
            assert [c.value for c in claims(a, Metric.TOP5)] == [
                pytest.approx(truth["top5"], abs=1e-3)
            ], repo
        if "verified_top1" in truth:
            measured = [c.value for c in a.claims if c.kind is ClaimKind.MEASURED]
            assert measured == [pytest.approx(truth["verified_top1"], abs=1e-3)], repo
        if truth.get("trainer"):  # the body's rounded figure is the same claim, not a second one
            assert any(abs(v - truth["trainer_eval"]) <= 0.005 + 1e-9 for v in top1), repo
            assert len([c for c in claims(a) if c.kind is ClaimKind.CLAIMED]) == 1, (repo, top1)


def test_real_cards_no_claim_where_the_card_states_none(shared_dir: Path) -> None:
    for repo, text in _real_cards(shared_dir).items():
        if repo in TRUTH["claims"]:
            continue
        a = parse_card(text, repo_id=repo)
        assert a.claims == [], (
            repo,
            [(c.value, c.evidence) for c in a.claims],
            TRUTH["not_claims"].get(repo),
        )


def test_real_cards_trainer_cards_name_base_model_and_training_set(shared_dir: Path) -> None:
    cards = _real_cards(shared_dir)
    trainer = [r for r, t in TRUTH["claims"].items() if t.get("trainer")]
    assert len(trainer) == 17
    for repo in trainer:
        a = parse_card(cards[repo], repo_id=repo)
        assert a.base_models, repo
        assert a.final_dataset, repo
        assert {c.dataset for c in a.claims} == {a.final_dataset}, (
            repo
        )  # so the catalogue's top1 shows it
