"""Facts a user reads off an entry: top-1 at the loader's input size, one weight file counted
once, test nets left out of listings and statistics unless asked for."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from securitynet.catalogue.api import Catalogue
from securitynet.catalogue.identity import link_shared_weights
from securitynet.catalogue.ingest import seed_datasets, write_records
from securitynet.catalogue.stats import accuracy_stats
from securitynet.records import AccuracyClaim, DatasetLink, EntryRecord, FileRef, LoadSpec


def _record(
    name: str,
    *,
    url: str,
    sha256: str | None = None,
    claims: tuple[tuple[float, int | None], ...] = ((80.0, 224),),
    input_size: int = 224,
    tags: tuple[str, ...] = (),
) -> EntryRecord:
    return EntryRecord(
        id=f"timm:{name}",
        architecture=name.split(".")[0],
        family="vit",
        input_size=input_size,
        tags=list(tags),
        datasets=[DatasetLink(dataset="ImageNet-1k", source="timm", evidence="tag")],
        claims=[
            AccuracyClaim(dataset="ImageNet-1k", value=v, img_size=s, source="timm-results")
            for v, s in claims
        ],
        files=[FileRef(url=url, sha256=sha256)],
        load=LoadSpec(builder="timm", architecture=name, input_size=(3, input_size, input_size)),
    )


HUB = "hf://timm/vit_large_patch14_clip_224.openai/open_clip_pytorch_model.bin"
RECORDS = [
    # one hub file under two names, as timm registers its QuickGELU aliases
    _record("vit_large_patch14_clip_224.openai", url=HUB, claims=((75.0, 224),)),
    _record("vit_large_patch14_clip_quickgelu_224.openai", url=HUB, claims=((75.0, 224),)),
    # one file at two URLs, told apart only by its hash
    _record("a.x", url="https://example.org/a.pth", sha256="a" * 64, claims=((70.0, 224),)),
    _record("b.x", url="https://mirror.example.org/a.pth", sha256="a" * 64, claims=((70.0, 224),)),
    # measured at 224 (the loader's size) and at 288
    _record(
        "resnet50.a1_in1k",
        url="hf://timm/resnet50.a1_in1k/model.safetensors",
        claims=((80.382, 224), (81.24, 288)),
    ),
    _record(
        "test_vit.r160_in1k",
        url="hf://timm/test_vit.r160_in1k/model.safetensors",
        claims=((40.0, 160),),
        input_size=160,
        tags=("test-net",),
    ),
]


@pytest.fixture
def cat(empty_catalogue: Catalogue) -> Iterator[Catalogue]:
    with Session(empty_catalogue.engine) as session, session.begin():
        seed_datasets(session)
        write_records(session, RECORDS, origin="timm")
    link_shared_weights(empty_catalogue.engine)
    yield empty_catalogue


def test_top1_is_the_figure_at_the_loaders_input_size(cat: Catalogue) -> None:
    entry = cat.get("timm:resnet50.a1_in1k")
    assert (entry.input_size, entry.top1, entry.top1_size) == (224, 80.382, 224)
    assert (entry.top1_best, entry.top1_best_size) == (81.24, 288)
    (row,) = cat.search(text="resnet50")
    assert (row.top1, row.top1_best, row.top1_best_size) == (80.382, 81.24, 288)


def test_one_weight_file_is_one_checkpoint(cat: Catalogue) -> None:
    quick = cat.get("timm:vit_large_patch14_clip_quickgelu_224.openai")
    assert quick.same_weights_as == "timm:vit_large_patch14_clip_224.openai"  # the file's own name
    (fact,) = [f for f in quick.facts if f.key == "same_weights_as"]
    assert HUB in (fact.evidence or "")
    assert cat.get("timm:vit_large_patch14_clip_224.openai").same_weights_as is None
    assert cat.get("timm:b.x").same_weights_as == "timm:a.x"  # same sha256, another URL

    listed = {e.id for e in cat.search()}
    assert listed == {
        "timm:vit_large_patch14_clip_224.openai",
        "timm:a.x",
        "timm:resnet50.a1_in1k",
    }
    every = {e.id for e in cat.search(include_shared_weights=True, include_test_nets=True)}
    assert every == {r.id for r in RECORDS}
    stats = accuracy_stats(cat, by="dataset").set_index("dataset")
    assert stats.loc["ImageNet-1k", "entries"] == 3
    with cat.engine.connect() as conn:  # the counting view agrees
        assert conn.execute(text("SELECT entries FROM v_entries_per_dataset")).all() == [(3,)]


def test_links_follow_the_files(cat: Catalogue) -> None:
    moved = _record("b.x", url="https://example.org/b.pth", sha256="b" * 64)
    with Session(cat.engine) as session, session.begin():
        write_records(session, [moved], origin="timm")
    link_shared_weights(cat.engine)
    entry = cat.get("timm:b.x")
    assert entry.same_weights_as is None
    assert not [f for f in entry.facts if f.key == "same_weights_as"]


def test_test_nets_are_left_out_unless_asked(cat: Catalogue) -> None:
    assert cat.get("timm:test_vit.r160_in1k").test_net
    assert "timm:test_vit.r160_in1k" not in {e.id for e in cat.search()}
    assert [e.id for e in cat.search(include_test_nets=True, text="test_")] == [
        "timm:test_vit.r160_in1k"
    ]
    frame = cat.to_dataframe(include_test_nets=True)
    assert "timm:test_vit.r160_in1k" in set(frame["id"])


def test_label_sets_are_stored_once(empty_catalogue: Catalogue) -> None:
    from sqlalchemy import func, select

    from securitynet.catalogue.models import Entry, LabelSet

    labels = [f"class {i}" for i in range(1000)]

    def hub(name: str, names: list[str]) -> EntryRecord:
        return EntryRecord(
            id=f"hf:someone/{name}",
            load=LoadSpec(builder="transformers", architecture="ViTForImageClassification", labels=names),
        )

    records = [hub(f"vit-{i}", labels) for i in range(3)] + [hub("beans", ["angular", "bean_rust", "healthy"])]
    with Session(empty_catalogue.engine) as session, session.begin():
        write_records(session, records[:2], origin="hf")
        write_records(session, records[2:], origin="hf")  # a later batch reuses the stored set
    with Session(empty_catalogue.engine) as session:
        assert session.scalar(select(func.count()).select_from(LabelSet)) == 2
        stored = session.scalar(select(Entry.load_spec).where(Entry.id == "hf:someone/vit-1"))
        assert stored is not None and stored["labels"] is None  # not inline: 25 KB per entry at Hub scale
    for record in records:
        entry = empty_catalogue.get(record.id)
        assert entry.load is not None and record.load is not None
        assert entry.load.labels == record.load.labels
