"""Why joint NER + MLM training costs NER F1: how large each loss's gradient is on the shared encoder.

Pipeline: configs/ner.cfg (transformer + trf_tagger_ner) + fill_mask (mlm_rate 0.15), one optimizer,
trained on WNUT-17 training sentences (gold tokens) either NER-only (`--train ner`, fill_mask
excluded) or jointly (`--train joint`, fill_mask with `--loss-weight` / `--mlm-share`). Every
`--probe-every` steps, on a fixed probe batch, the gradient of each loss is taken separately
(no optimizer step; thrown away afterwards) on every parameter array of the encoder:

- ner: `nlp.update(probe, sgd=False, exclude=["fill_mask"])` (through the listener, as in training);
- mlm: `fill_mask.update(probe)` at loss_weight 1 and share 1 (its own masked pass).

Per probe it records, over the encoder's arrays (word embeddings reported apart: the MLM decoder is
tied to them, so the MLM gradient there is dense): both global norms, the median per-array ratio
||g_mlm|| / ||g_ner||, their cosine, and for MLM weights w in --weights the share of arrays whose
summed gradient ||g_ner + w g_mlm|| is above thinc's per-array clip (grad_clip 1.0) and the median
share of the summed update that is NER's (||g_ner|| / (||g_ner|| + w ||g_mlm||)). Adam divides each
element by its running RMS, so where w ||g_mlm|| >> ||g_ner|| the NER part of the step shrinks by
about that ratio: the ratio says which loss_weight balances the two.

    python bench/grad_balance.py --base-model models/minilm-wiki/final --steps 60 --probe-every 20
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from bench_joint import build_pipeline
from common import append_jsonl, data_dir
from eval_tasks import NER_FILES, REPO, gold_tokens_doc, load_docs


def encoder_grads(encoder: Any) -> Dict[str, Any]:
    """The encoder's current gradient per parameter array (a copy), then cleared."""
    grads = {}
    for name, param in encoder.named_parameters():
        if param.grad is not None:
            grads[name] = param.grad.detach().clone()
            param.grad = None
    return grads


def clear_head_grads(nlp: Any) -> None:
    """Zero the thinc heads' accumulated gradients (the next real update adds to them) and the
    fill_mask head's torch gradients, so that a probe leaves no trace in training."""
    for _, pipe in nlp.pipeline:
        model = getattr(pipe, "model", None)
        if model is None or model in (True, False):
            continue
        for node in model.walk():
            for name in node.param_names:
                if node.has_grad(name):
                    node.set_grad(name, node.ops.alloc(node.get_param(name).shape, dtype=node.get_param(name).dtype))
    head = getattr(nlp.get_pipe("fill_mask"), "head", None)
    if head is not None:
        head.zero_grad(set_to_none=True)


def probe(nlp: Any, examples: List[Any], weights: Sequence[float]) -> Dict[str, Any]:
    import torch

    encoder = nlp.get_pipe("transformer").model.transformer
    encoder_grads(encoder)  # nothing should be pending; make sure
    nlp.update(examples, sgd=False, exclude=["fill_mask"], losses={})
    ner = encoder_grads(encoder)
    clear_head_grads(nlp)
    fill_mask = nlp.get_pipe("fill_mask")
    saved = (fill_mask.loss_weight, fill_mask.mlm_share)
    fill_mask.loss_weight, fill_mask.mlm_share = 1.0, 1.0
    mlm_losses: Dict[str, float] = {}
    fill_mask.update(examples, sgd=None, losses=mlm_losses)
    fill_mask.loss_weight, fill_mask.mlm_share = saved
    mlm = encoder_grads(encoder)
    clear_head_grads(nlp)

    names = [n for n in ner if n in mlm and "word_embeddings" not in n]
    n_norm = torch.stack([ner[n].norm() for n in names])
    m_norm = torch.stack([mlm[n].norm() for n in names])
    dot = sum(float((ner[n] * mlm[n]).sum()) for n in names)
    row: Dict[str, Any] = {
        "arrays": len(names),
        "mlm_loss": mlm_losses.get("fill_mask"),
        "ner_global": float(n_norm.norm()), "mlm_global": float(m_norm.norm()),
        "ratio_median": float((m_norm / n_norm.clamp_min(1e-12)).median()),
        "ratio_p10_p90": [float(x) for x in torch.quantile(m_norm / n_norm.clamp_min(1e-12), torch.tensor([0.1, 0.9]))],
        "cosine": dot / max(float(n_norm.norm() * m_norm.norm()), 1e-12),
        "ner_arrays_clipped": float((n_norm > 1.0).float().mean()),
        "word_embeddings": {k: float(g["embeddings.word_embeddings.weight"].norm()) for k, g in (("ner", ner), ("mlm", mlm))
                            if "embeddings.word_embeddings.weight" in g},
    }
    for w in weights:
        summed = torch.stack([(ner[n] + w * mlm[n]).norm() for n in names])
        row[f"w{w:g}"] = {"arrays_clipped": float((summed > 1.0).float().mean()),
                          "ner_share_median": float((n_norm / (n_norm + w * m_norm)).median())}
    return row


def main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--base-model", required=True, help="HF checkpoint with an MLM head")
    parser.add_argument("--train", choices=["ner", "joint"], default="ner", help="what the steps between probes train")
    parser.add_argument("--loss-weight", type=float, default=1.0, help="--train joint: fill_mask loss_weight")
    parser.add_argument("--mlm-share", type=float, default=1.0, help="--train joint: fill_mask mlm_share")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--probe-every", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16, help="sentences per step (and in the probe batch)")
    parser.add_argument("--lr", type=float, default=1e-4, help="constant learning rate after a 10%% warm-up")
    parser.add_argument("--weights", default="1,0.3,0.1,0.03", help="MLM loss weights to evaluate at each probe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "grad_balance.jsonl")
    args = parser.parse_args(argv)
    from spacy.training import Example

    weights = [float(w) for w in args.weights.split(",")]
    docs = load_docs(data_dir(args.data_dir) / NER_FILES[0], "ner", (args.steps + 1) * args.batch_size)
    nlp = build_pipeline(str(args.base_model), docs, args.seed)
    fill_mask = nlp.get_pipe("fill_mask")
    fill_mask.loss_weight, fill_mask.mlm_share = args.loss_weight, args.mlm_share
    optimizer = nlp.create_optimizer()
    warmup = max(1, args.steps // 10)
    examples = [Example(gold_tokens_doc(nlp.vocab, d), d) for d in docs]
    probe_batch, train = examples[: args.batch_size], examples[args.batch_size :]
    rows = []
    for step in range(args.steps + 1):
        if step % args.probe_every == 0:
            row = {"base_model": str(args.base_model), "train": args.train, "loss_weight": args.loss_weight,
                   "mlm_share": args.mlm_share, "lr": args.lr, "seed": args.seed, "step": step, **probe(nlp, probe_batch, weights)}
            print(json.dumps(row), file=sys.stderr, flush=True)
            append_jsonl(args.out, row)
            rows.append(row)
        if step == args.steps:
            break
        batch = train[step * args.batch_size : (step + 1) * args.batch_size]
        optimizer.learn_rate = args.lr * min(1.0, (step + 1) / warmup)  # linear warm-up, then flat: no decay
        nlp.update(batch, sgd=optimizer, losses={}, exclude=["fill_mask"] if args.train == "ner" else [])
    for row in rows:
        shares = ", ".join(f"w {w:g}: NER share {row[f'w{w:g}']['ner_share_median']:.2f}, clipped {row[f'w{w:g}']['arrays_clipped']:.0%}"
                           for w in weights)
        print(f"step {row['step']:4d}  |g_ner| {row['ner_global']:.3f}  |g_mlm| {row['mlm_global']:.3f}  "
              f"ratio {row['ratio_median']:.1f}  cos {row['cosine']:+.3f}  {shares}")
    return rows


if __name__ == "__main__":
    main()
