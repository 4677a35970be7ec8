"""Domain-adaptive pretraining on tweets: does `spacy-mlm init-config dapt` pay downstream?

(b) all-MiniLM-L6-v2 as shipped vs (c) the same checkpoint after `spacy-mlm pretrain` with the
`init-config dapt` recipe on the 100,000 unlabeled TweetEval tweets (emoji/*_text.txt) plus the
tasks' training text without labels. Both are fine-tuned with the same settings (spaCy's loop,
configs/textcat.cfg or configs/ner.cfg, eval_tasks.run_spacy) and scored on data never trained on:
TweetEval emotion val (macro-F1 over its 4 classes), irony val (F1 of the irony class) and WNUT-17
dev (entity F1). Every run is one JSON line in --out; a rerun skips the runs already there.

    python bench/dapt_tweets.py corpus                  # WORK/tweets.txt from --data-dir
    python bench/dapt_tweets.py pretrain [--max-steps N] [--tag dapt]   # WORK/<tag>/final
    python bench/dapt_tweets.py finetune --task emotion --encoder base,dapt --seed 1,2,3
    python bench/dapt_tweets.py summary
"""

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

from common import append_jsonl, data_dir, minilm_checkpoint
from eval_tasks import NER_FILES, REPO, load_docs, run_spacy

RESULTS = REPO / "bench" / "results" / "dapt_tweets.jsonl"
UNLABELED = [f"tweeteval/emoji/{split}_text.txt" for split in ("train", "val", "test")]
TWEET_TASKS = {"emotion": "tweeteval/emotion", "irony": "tweeteval/irony"}
# The official TweetEval metric: macro-F1 (emotion), F1 of the positive class (irony).
POSITIVE = {"irony": "irony"}


def build_corpus(root: Path, work: Path) -> Path:
    """The pretraining text: the unlabeled tweets, then each task's training text (no labels)."""
    from spacy_mlm.convert import read_conll_sentences

    lines: List[str] = []
    for name in UNLABELED + [f"{folder}/train_text.txt" for folder in TWEET_TASKS.values()]:
        lines += [x.strip() for x in (root / name).read_text(encoding="utf8").splitlines() if x.strip()]
    lines += [" ".join(words) for _, words, _ in read_conll_sentences(root / NER_FILES[0])]
    work.mkdir(parents=True, exist_ok=True)
    out = work / "tweets.txt"
    out.write_text("\n".join(lines) + "\n", encoding="utf8")
    print(f"{len(lines):,} lines, {sum(len(x.split()) for x in lines):,} words -> {out}")
    return out


def pretrain(args) -> Path:
    base = minilm_checkpoint()
    config = args.work / "dapt.cfg"
    cli = [sys.executable, "-m", "spacy_mlm"]
    if not config.exists():
        subprocess.run(cli + ["init-config", "dapt", str(config), "--base-model", str(base)], check=True)
    out = args.work / args.tag
    extra = ["--training.max_steps", str(args.max_steps)] if args.max_steps else []
    resume = ["--resume"] if (out / "run.json").exists() else []
    start, code = time.perf_counter(), commit()  # the code that ran, not the one at the end
    subprocess.run(cli + ["pretrain", str(config), str(out), "--paths.train", str(args.work / "tweets.txt"),
                          "--gpu-id", str(args.gpu_id), "--logging.progress_bar", "false", *extra, *resume], check=True)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [{k: r[k] for k in ("step", "eval_loss", "eval_accuracy")} for r in rows if "eval_loss" in r]
    last = [r for r in rows if "loss" in r][-1]
    append_jsonl(args.out, {"kind": "pretrain", "tag": args.tag, "commit": code,
                            "config": config.read_text().replace(str(base), "ALL_MINILM_L6_V2"),
                            "overrides": extra, "seconds": time.perf_counter() - start, "tokens": last["tokens"],
                            "tokens_per_s": last["tokens_per_s"], "evals": evals})
    return out / "final"


def task_docs(root: Path, task: str):
    """(train, dev) reference docs of a task."""
    import spacy

    from spacy_mlm.readers.parallel_labels import read_parallel_textcat

    if task == "ner":
        return load_docs(root / NER_FILES[0], "ner"), load_docs(root / NER_FILES[1], "ner")
    folder, nlp = root / TWEET_TASKS[task], spacy.blank("en")
    split = [list(read_parallel_textcat(folder / f"{s}_text.txt", folder / f"{s}_labels.txt", folder / "mapping.txt",
                                        nlp=nlp)) for s in ("train", "val")]
    return split[0], split[1]


def official(task: str, pred_cats: Sequence[Dict[str, float]], refs: Sequence[Any]) -> float:
    """Macro-F1 over the classes, or the positive class's F1 (TweetEval's metric of each task)."""
    labels = list(refs[0].cats)
    gold = [max(r.cats, key=r.cats.get) for r in refs]
    pred = [max(p, key=p.get) for p in pred_cats]

    def f1(label: str) -> float:
        tp = sum(g == p == label for g, p in zip(gold, pred))
        n_pred, n_gold = pred.count(label), gold.count(label)
        return 2 * tp / (n_pred + n_gold) if n_pred + n_gold else 0.0

    return f1(POSITIVE[task]) if task in POSITIVE else statistics.mean(f1(label) for label in labels)


def finetune(args) -> None:
    root = data_dir(args.data_dir)
    done = {run_key(r) for r in read_rows(args.out) if r.get("kind") == "finetune"}
    for task in args.task.split(","):
        train, dev = task_docs(root, task)
        for encoder in args.encoder.split(","):
            model = minilm_checkpoint() if encoder == "base" else args.work / encoder / "final"
            for seed in (int(s) for s in args.seed.split(",")):
                row = {"kind": "finetune", "task": task, "encoder": encoder, "seed": seed, "epochs": args.epochs,
                       "lr": args.lr, "batch_size": args.batch_size}
                if run_key(row) in done:
                    continue
                predictions = args.work / "predictions" / f"{task}-{encoder}-seed{seed}.jsonl"
                ns = argparse.Namespace(base_model=model, seed=seed, epochs=args.epochs, lr=args.lr, gpu_id=args.gpu_id,
                                        batch_size=args.batch_size, warmup_ratio=0.1, mlm_rate=None, set=None,
                                        save_dir=None, tag=encoder, predictions=predictions)
                kind = "ner" if task == "ner" else "textcat"
                print(f"== {task} / {encoder} / seed {seed}: {len(train)} train, {len(dev)} dev", file=sys.stderr)
                code = commit()  # the code that ran, not the one at the end
                result = run_spacy(kind, train, dev, ns)
                if kind == "textcat":
                    cats = [json.loads(x)["cats"] for x in predictions.read_text().splitlines()]
                    result["official"] = official(task, cats, dev)
                else:
                    result["official"] = result["ents_f"]
                append_jsonl(args.out, {**row, "commit": code, "result": result})
                print(f"   {json.dumps(result)}", file=sys.stderr)


def paired_bootstrap(task: str, root: Path, work: Path, n: int = 1000) -> Dict[str, float]:
    """95% interval of (c) - (b) on val, resampling val docs (seed means of each side's predictions)."""
    _, dev = task_docs(root, task)
    runs = {enc: sorted((work / "predictions").glob(f"{task}-{enc}-seed*.jsonl")) for enc in ("base", "dapt")}
    if task == "ner" or not all(runs.values()):
        return {}
    preds = {enc: [[json.loads(x)["cats"] for x in p.read_text().splitlines()] for p in paths] for enc, paths in runs.items()}
    rng, diffs = random.Random(0), []
    for _ in range(n):
        idx = [rng.randrange(len(dev)) for _ in dev]
        refs = [dev[i] for i in idx]
        side = {enc: statistics.mean(official(task, [run[i] for i in idx], refs) for run in p) for enc, p in preds.items()}
        diffs.append(side["dapt"] - side["base"])
    diffs.sort()
    return {"low": diffs[int(0.025 * n)], "high": diffs[int(0.975 * n)]}


def summary(args) -> None:
    rows = [r for r in read_rows(args.out) if r.get("kind") == "finetune"]
    for task in sorted({r["task"] for r in rows}):
        line = [f"{task:8s}"]
        for enc in ("base", "dapt"):
            vals = [r["result"]["official"] for r in rows if r["task"] == task and r["encoder"] == enc]
            if vals:
                std = statistics.stdev(vals) if len(vals) > 1 else 0.0
                line.append(f"{enc}: {100 * statistics.mean(vals):.2f} ± {100 * std:.2f} (n={len(vals)})")
        interval = paired_bootstrap(task, data_dir(args.data_dir), args.work)
        if interval:
            line.append(f"dapt - base 95% CI [{100 * interval['low']:+.2f}, {100 * interval['high']:+.2f}]")
        print("  ".join(line))


def run_key(row: Dict[str, Any]) -> str:
    return json.dumps([row.get(k) for k in ("task", "encoder", "seed", "epochs", "lr", "batch_size")])


def read_rows(path: Path) -> List[Dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf8").splitlines() if x.strip()] if path.is_file() else []


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["corpus", "pretrain", "finetune", "summary"])
    parser.add_argument("--data-dir", default=None, help="default: ../shared/data beside the repo")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / ".dapt", help="corpus, pretrained model, predictions")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--tag", default="dapt", help="pretrain: the output folder under --work")
    parser.add_argument("--max-steps", type=int, default=0, help="pretrain: [training] max_steps (0: the recipe's)")
    parser.add_argument("--task", default="emotion,irony,ner")
    parser.add_argument("--encoder", default="base,dapt", help="base, or a pretrain --tag under --work")
    parser.add_argument("--seed", default="1,2,3")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--gpu-id", type=int, default=-1, help="pretrain and finetune: the GPU (-1: CPU)")
    args = parser.parse_args(argv)
    if args.step == "corpus":
        build_corpus(data_dir(args.data_dir), args.work)
    elif args.step == "pretrain":
        pretrain(args)
    elif args.step == "finetune":
        finetune(args)
    else:
        summary(args)


if __name__ == "__main__":
    main()
