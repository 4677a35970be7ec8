"""Where the two systems' NER errors differ: the protocol's dev predictions, error by error.

Reads the eval runs of `bench/protocol_tasks.py` (their saved predictions) and the WNUT-17 dev set;
for each system, mean over its seeds:
- P / R / F per entity type (exact spans);
- every gold entity not found exactly, by cause: `type` (the same span, another label),
  `boundary` (an overlapping predicted span of the same label, other edges), `overlap-other`
  (overlapping, other label and edges), `missed` (no predicted span overlaps it);
- every wrong prediction likewise: `type`, `boundary`, `overlap-other`, `spurious` (overlaps no gold);
- recall of gold entities whose first word the checkpoint's tokenizer splits into several
  wordpieces vs one (HF labels the first wordpiece; trf_tagger_ner pools the word's wordpieces).

    python bench/protocol_errors.py bench/results/protocol_tasks.jsonl [--phase eval]
"""

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from common import data_dir, minilm_checkpoint
from eval_tasks import NER_FILES, load_docs
from protocol_tasks import read_predictions, read_rows

Span = Tuple[int, int, str]


def classify(gold: Set[Span], pred: Set[Span]) -> Tuple[Counter, Counter]:
    """Causes of the gold spans not predicted exactly, and of the predicted spans not in gold."""

    def cause(span: Span, others: Set[Span], lonely: str) -> str:
        start, end, label = span
        touching = [o for o in others if o[0] < end and start < o[1]]
        if any(o[:2] == (start, end) for o in touching):
            return "type"
        if any(o[2] == label for o in touching):
            return "boundary"
        return "overlap-other" if touching else lonely

    misses = Counter(cause(g, pred, "missed") for g in gold - pred)
    wrong = Counter(cause(p, gold, "spurious") for p in pred - gold)
    return misses, wrong


def analyse(rows: List[Dict[str, Any]], gold_docs: Sequence[Any], root: Path, split_words: Set[Tuple[int, int]]) -> Dict[str, Any]:
    """Per system: means over its runs (one per seed)."""
    per_run = []
    for row in rows:
        counts: Dict[str, Counter] = defaultdict(Counter)
        misses, wrong = Counter(), Counter()
        split_found = Counter()
        for i, (saved, ref) in enumerate(zip(read_predictions(row, root, len(gold_docs)), gold_docs)):
            pred = {tuple(e) for e in saved["ents"]}
            gold = {(e.start, e.end, e.label_) for e in ref.ents}
            for s in pred & gold:
                counts[s[2]]["tp"] += 1
            for s in pred - gold:
                counts[s[2]]["fp"] += 1
            for s in gold - pred:
                counts[s[2]]["fn"] += 1
            m, w = classify(gold, pred)
            misses += m
            wrong += w
            for g in gold:
                key = "split" if (i, g[0]) in split_words else "whole"
                split_found[f"{key}_gold"] += 1
                split_found[f"{key}_found"] += g in pred
        per_run.append((counts, misses, wrong, split_found))
    n = len(per_run)
    labels = sorted({label for counts, *_ in per_run for label in counts})
    out: Dict[str, Any] = {"runs": n, "types": {}}
    for label in labels + ["ALL"]:
        tp = sum(sum(c[lab]["tp"] for lab in ([label] if label != "ALL" else labels)) for c, *_ in per_run) / n
        fp = sum(sum(c[lab]["fp"] for lab in ([label] if label != "ALL" else labels)) for c, *_ in per_run) / n
        fn = sum(sum(c[lab]["fn"] for lab in ([label] if label != "ALL" else labels)) for c, *_ in per_run) / n
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        out["types"][label] = {"gold": tp + fn, "predicted": tp + fp, "p": p, "r": r, "f": 2 * p * r / (p + r) if p + r else 0.0}
    out["missed_gold"] = {k: sum(m[k] for _, m, _, _ in per_run) / n for k in ("type", "boundary", "overlap-other", "missed")}
    out["wrong_predictions"] = {k: sum(w[k] for _, _, w, _ in per_run) / n for k in ("type", "boundary", "overlap-other", "spurious")}
    sf = Counter()
    for *_, s in per_run:
        sf += s
    out["recall_first_word_split"] = sf["split_found"] / max(sf["split_gold"], 1)
    out["recall_first_word_whole"] = sf["whole_found"] / max(sf["whole_gold"], 1)
    out["gold_first_word_split_share"] = sf["split_gold"] / max(sf["split_gold"] + sf["whole_gold"], 1)
    return out


def split_first_words(gold_docs: Sequence[Any], base_model: str) -> Set[Tuple[int, int]]:
    """(doc index, token index) of every gold entity start whose word is several wordpieces."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    out = set()
    for i, doc in enumerate(gold_docs):
        for ent in doc.ents:
            if len(tokenizer.tokenize(doc[ent.start].text)) > 1:
                out.add((i, ent.start))
    return out


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="the protocol's JSONL (its predictions folder beside it)")
    parser.add_argument("--encoder", default="pretrained", help="spacy-mlm's encoder row of the ablation (HF runs: pretrained)")
    parser.add_argument("--phase", default="eval", choices=["eval", "tune"])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--base-model", default=None, help="for the wordpiece split; default: the runs' base_model")
    parser.add_argument("--max-dev", type=int, default=0, help="runs with this max_dev (0: full dev set)")
    args = parser.parse_args(argv)
    rows = [r for r in read_rows(args.results) if r["task"] == "ner" and r["phase"] == args.phase and "predictions" in r
            and (r.get("max_dev") or 0) == args.max_dev and r.get("encoder", "pretrained") == args.encoder]
    if not rows:
        parser.error(f"no NER {args.phase} runs with predictions in {args.results}")
    train_file, dev_file = NER_FILES
    if args.phase == "eval":
        gold = load_docs(data_dir(args.data_dir) / dev_file, "ner", args.max_dev)
    else:  # the tune split: the last 10% of the (possibly limited) training set
        train = load_docs(data_dir(args.data_dir) / train_file, "ner", rows[0].get("max_train") or 0)
        gold = train[len(train) * 9 // 10 :]
    split = split_first_words(gold, args.base_model or rows[0]["base_model"] or str(minilm_checkpoint()))
    report = {}
    for system in ("hf", "spacy"):
        runs = [r for r in rows if r["system"] == system]
        if args.phase == "tune":
            runs = [max(runs, key=lambda r: r["result"]["ents_f"])] if runs else []
        if runs:
            report[system] = analyse(runs, gold, args.results.parent, split)
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
