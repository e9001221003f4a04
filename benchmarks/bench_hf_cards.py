"""How much of what the 120 real Hub model cards claim lands in the catalogue.

    python benchmarks/bench_hf_cards.py [--card auto|signalled|always] [--url sqlite:///...]

Serves the real recorded ViT model info and the 120 real cards of ../shared/fixtures/hf on
the loopback Hub (tests/fakehub.py), syncs the hf source into a fresh catalogue with
``Catalogue.sync``, and holds the stored claims against the hand-labelled reading of the
cards (tests/annotate/hf_cards_truth.yaml). Prints:

* the share of cards with a machine-readable result whose accuracy claim landed;
* the share of Trainer-style cards whose evaluation-set accuracy landed;
* the share of prose claims that landed, and whether the merged view (``top1``) shows them;
* false claims: cards labelled as stating none (or a figure that is not theirs) that got one;
* every miss, with its reason;
* requests per entry of the first sync, and of a second sync of the unchanged Hub;
* requests per entry of the first ``show`` of every entry (what the sync left pending:
  config.json, preprocessor_config.json, a HEAD of the weight file).

``--card`` is the README policy of the manifest (``files.card``): ``auto`` reads a card's
body where its metadata holds no claim, ``signalled`` only Trainer and AutoTrain cards.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MACHINE_READABLE = ("model-index", "trainer", "autotrain", "trainer-log", "table", "key-value")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=None, help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--card", choices=("auto", "signalled", "always"), default="auto")
    args = parser.parse_args()

    from securitynet.catalogue.api import Catalogue
    from securitynet.records import Metric
    from securitynet.settings import get_settings
    from tests.fakehub import FakeHub, shared_models

    truth = yaml.safe_load((ROOT / "tests" / "annotate" / "hf_cards_truth.yaml").read_text())
    hub = FakeHub(page_size=50)
    for record, files in shared_models(args.shared):
        hub.add_model(record, files)
    hub.add_lfs_weights()
    hub.start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-hf-cards-"))
    settings = get_settings(home=tmp, hf_endpoint=hub.url)
    cat = Catalogue(args.url or f"sqlite:///{tmp / 'catalogue.db'}", settings=settings)
    options = {"files": {"card": args.card}}
    (summary,) = cat.sync("hf", options=options)
    listed = summary.seen
    first = {r: hub.count(r) for r in ("listing", "model-info", "file")}
    hub.reset_counts()
    (again,) = cat.sync("hf", options=options)
    second = {r: hub.count(r) for r in ("listing", "model-info", "file")}
    hub.reset_counts()
    filled = sum(cat.fill_pending(e.id) for e in cat.search(source="hf", limit=None))
    show_requests = hub.count("file")
    hub.stop()

    rows: dict[str, list[tuple[str, bool, str]]] = {}
    misses: list[str] = []
    trainer_total = trainer_landed = 0
    for repo, t in truth["claims"].items():
        entry = cat.find(f"hf:{repo}")
        if entry is None:
            reason = (
                "not listed: its pipeline tag is not image-classification, nor is it a timm model"
            )
            rows.setdefault(t["form"], []).append((repo, False, reason))
            misses.append(f"{repo} ({t['form']}): {reason}")
            if t.get("trainer"):
                trainer_total += 1
            continue
        top1 = [c for c in entry.claims if c.metric is Metric.TOP1]
        hit = next((c for c in top1 if abs(c.value - t["top1"]) <= 1e-3), None)
        shown = entry.top1 is not None and abs(entry.top1 - t["top1"]) <= 1e-3
        note = "" if shown or hit is None else (
            f"claim on {hit.dataset!r}, but the entry's final training set is {entry.dataset!r}, "
            "so the merged top1 does not show it"
        )  # fmt: skip
        rows.setdefault(t["form"], []).append((repo, hit is not None, note))
        if hit is None:
            misses.append(f"{repo} ({t['form']}): stored top-1 claims {[c.value for c in top1]}")
        if t.get("trainer"):
            trainer_total += 1
            trainer_landed += any(abs(c.value - t["trainer_eval"]) <= 0.005 + 1e-9 for c in top1)
    false_claims = [
        f"{repo}: {[c.value for c in e.claims]}"
        for repo in truth["not_claims"]
        if (e := cat.find(f"hf:{repo}")) is not None and e.claims
    ]
    unlabelled = [
        e.name
        for e in cat.search(source="hf", limit=None)
        if e.name not in truth["claims"] and e.top1 is not None
    ]

    mr = [row for form in MACHINE_READABLE for row in rows.get(form, [])]
    prose = rows.get("prose", [])
    print(f"card policy: {args.card}")
    print(f"cards: 120; listed by the hf source: {listed} (of 121 models with the recorded ViT)")
    print(
        f"cards with a machine-readable result whose accuracy claim landed: "
        f"{sum(ok for _, ok, _ in mr)}/{len(mr)} = {100 * sum(ok for _, ok, _ in mr) / len(mr):.1f} %"
    )
    for form in MACHINE_READABLE:
        if got := rows.get(form, []):
            print(f"  {form:<12} {sum(ok for _, ok, _ in got)}/{len(got)}")
    print(
        f"Trainer-style cards whose evaluation-set accuracy landed: {trainer_landed}/{trainer_total}"
        f" = {100 * trainer_landed / trainer_total:.1f} %"
    )
    print(f"prose claims that landed: {sum(ok for _, ok, _ in prose)}/{len(prose)}")
    print(f"cards that state no claim of their own but got one: {len(false_claims)}")
    for line in false_claims:
        print(f"  {line}")
    print(f"entries with a top1 that the labelled reading does not list: {unlabelled}")
    print("misses:")
    for line in misses or ["  (none)"]:
        print(f"  {line}")
    print("landed, but not in the merged top1:")
    for repo, ok, note in mr + prose:
        if ok and note:
            print(f"  {repo}: {note}")
    print(
        f"requests, first sync: {sum(first.values())} for {listed} entries "
        f"({sum(first.values()) / listed:.2f} per entry: {first})"
    )
    print(
        f"requests, second sync of the unchanged Hub: {sum(second.values())} "
        f"({second}; {again.unchanged} unchanged)"
    )
    print(
        f"requests, first show of every entry: {show_requests} for {filled} entries with something "
        f"pending ({show_requests / max(filled, 1):.2f} per entry)"
    )


if __name__ == "__main__":
    main()
