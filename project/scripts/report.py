"""Print the evaluation table of a trained pipeline from the metrics files, and show it at work.

    python scripts/report.py METRICS_DIR [MODEL] [--showcase OUTPUT_JSON] [--data demo|real]

The showcase sentences occur in no training or pretraining asset (scripts/make_demo_data.py
leaves these facts, names and words out), so what the pipeline gets right on them comes from
the pretrained encoder and from generalisation, not from memorised demo data.
"""

import argparse
import json
from pathlib import Path
from typing import Any, Dict

from wasabi import msg

FILL_MASK = ["The capital of France is [MASK] .", "The capital of Japan is [MASK] .", "The capital of Italy is [MASK] ."]
ENTITIES = ["Yesterday Maria Lopez flew with Pacific Wings from Helsinki to Chicago ."]
REVIEWS = ["The museum tour was marvellous and the guide was brilliant .",
           "The bus was smelly and the driver was unfriendly ."]
# What each dev set is, for the row names: NER, sentiment, fill-mask text.
DEV_SETS = {
    "demo": ("dev: unseen names and templates", "dev: unseen words", "dev text"),
    "real": ("WNUT-17 dev", "SST-2 dev", "WikiText-2 test"),
}
# (sentence, paraphrase, unrelated): the paraphrase must score higher.
SIMILARITY = [("The train to Vienna was late .", "Our train to Vienna did not arrive on time .",
               "Maria bought a new camera in Tokyo .")]


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf8")) if path.is_file() else {}


def showcase(nlp: Any) -> Dict[str, Any]:
    """The pipeline's output on the showcase sentences, as plain JSON-able values."""
    out: Dict[str, Any] = {"fill_mask": {}, "entities": {}, "cats": {}, "similarity": []}
    for text in FILL_MASK:
        mask = nlp.get_pipe("fill_mask").mask_token if "fill_mask" in nlp.pipe_names else "[MASK]"
        doc = nlp(text.replace("[MASK]", mask))
        out["fill_mask"][text] = [[p["token_str"], round(p["score"], 4)] for p in doc._.fill_mask[0][:5]]
    for text in ENTITIES:
        out["entities"][text] = [[e.text, e.label_] for e in nlp(text).ents]
    for text in REVIEWS:
        out["cats"][text] = {k: round(v, 4) for k, v in sorted(nlp(text).cats.items())}
    for text, paraphrase, unrelated in SIMILARITY:
        doc = nlp(text)
        out["similarity"].append({"text": text, "paraphrase": paraphrase, "unrelated": unrelated,
                                  "paraphrase_score": round(doc.similarity(nlp(paraphrase)), 4),
                                  "unrelated_score": round(doc.similarity(nlp(unrelated)), 4)})
    return out


def print_showcase(shown: Dict[str, Any]) -> None:
    msg.divider("The pipeline on new sentences")
    for text, preds in shown["fill_mask"].items():
        print(f"{text}\n    fill_mask top-5: " + ", ".join(f"{t} ({s:.2f})" for t, s in preds))
    for text, ents in shown["entities"].items():
        print(f"{text}\n    entities: " + (", ".join(f"{t}/{label}" for t, label in ents) or "-"))
    for text, cats in shown["cats"].items():
        print(f"{text}\n    cats: " + ", ".join(f"{k}={v:.2f}" for k, v in cats.items()))
    for row in shown["similarity"]:
        print(f"similarity({row['text']!r}, paraphrase {row['paraphrase']!r}) = {row['paraphrase_score']:.3f}\n"
              f"similarity({row['text']!r}, unrelated {row['unrelated']!r}) = {row['unrelated_score']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("metrics_dir", type=Path)
    parser.add_argument("model", nargs="?", default="")
    parser.add_argument("--showcase", type=Path, default=None, help="also write the showcase output here (JSON)")
    parser.add_argument("--data", choices=sorted(DEV_SETS), default="demo", help="which dev sets the metrics are from")
    args = parser.parse_args()
    metrics = args.metrics_dir
    ner, textcat, pppl = load(metrics / "ner.json"), load(metrics / "textcat.json"), load(metrics / "pppl.json")
    sim = load(metrics / "similarity.json")
    ner_dev, textcat_dev, text_dev = DEV_SETS[args.data]
    rows = [
        (f"NER entity F1 ({ner_dev})", ner.get("ents_f")),
        ("NER precision / recall", f"{ner.get('ents_p', 0):.3f} / {ner.get('ents_r', 0):.3f}" if ner else None),
        (f"Sentiment accuracy ({textcat_dev}; micro-F = accuracy)", textcat.get("cats_micro_f")),
        (f"Sentiment macro-F ({textcat_dev})", textcat.get("cats_macro_f")),
        (f"Fill-mask pseudo-perplexity ({text_dev})", pppl.get("pseudo_perplexity")),
        ("Words/s (NER eval)", ner.get("speed")),
    ]
    rows += [(k, v) for k, v in sim.items()]
    table = [(name, f"{v:.3f}" if isinstance(v, float) else ("-" if v is None else str(v))) for name, v in rows]
    msg.table(table, header=("metric", "value"), divider=True, title="Evaluation")
    if args.model:
        import spacy

        shown = showcase(spacy.load(args.model))
        print_showcase(shown)
        if args.showcase:
            args.showcase.parent.mkdir(parents=True, exist_ok=True)
            args.showcase.write_text(json.dumps(shown, indent=2), encoding="utf8")


if __name__ == "__main__":
    main()
