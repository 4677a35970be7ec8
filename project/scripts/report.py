"""Print the evaluation table of a trained pipeline from the metrics files, and show it at work.

    python scripts/report.py METRICS_DIR [MODEL]
"""

import json
import sys
from pathlib import Path

from wasabi import msg

EXAMPLES = [
    "Priya Shah flew from Oslo to Lisbon with Northwind Air last week .",
    "The hotel in Kyoto was wonderful and the staff were friendly .",
    "Our ferry with Sunrise Ferries was dirty and late .",
    "Trains from Paris to [MASK] leave every hour from the main station .",
]


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf8")) if path.is_file() else {}


def main(metrics_dir: str, model: str = "") -> None:
    metrics = Path(metrics_dir)
    ner, textcat, pppl = load(metrics / "ner.json"), load(metrics / "textcat.json"), load(metrics / "pppl.json")
    sim = load(metrics / "similarity.json")
    rows = [
        ("NER entity F1 (dev)", ner.get("ents_f")),
        ("NER precision / recall", f"{ner.get('ents_p', 0):.3f} / {ner.get('ents_r', 0):.3f}" if ner else None),
        ("Sentiment accuracy (dev; micro-F = accuracy)", textcat.get("cats_micro_f")),
        ("Sentiment macro-F (dev)", textcat.get("cats_macro_f")),
        ("Fill-mask pseudo-perplexity (dev text)", pppl.get("pseudo_perplexity")),
        ("Words/s (NER eval)", ner.get("speed")),
    ]
    rows += [(k, v) for k, v in sim.items()]
    table = [(name, f"{v:.3f}" if isinstance(v, float) else ("-" if v is None else str(v))) for name, v in rows]
    msg.table(table, header=("metric", "value"), divider=True, title="Evaluation")
    if model:
        import spacy

        nlp = spacy.load(model)
        for text in EXAMPLES:
            doc = nlp(text)
            cats = ", ".join(f"{k}={v:.2f}" for k, v in sorted(doc.cats.items()))
            ents = ", ".join(f"{e.text}/{e.label_}" for e in doc.ents) or "-"
            fills = "; ".join(", ".join(p["token_str"] for p in entry[:3]) for entry in doc._.fill_mask)
            print(f"{text}\n    ents: {ents}\n    cats: {cats}" + (f"\n    fill_mask: {fills}" if fills else ""))
        a, b = nlp(EXAMPLES[1]), nlp(EXAMPLES[2])
        print(f"similarity(review 1, review 2) = {a.similarity(b):.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
