"""Does fill_mask survive NER fine-tuning? Masked-token accuracy before and after WNUT-17 NER
training of transformer + fill_mask + configs/ner.cfg's NER pipe (trf_tagger_ner), with fill_mask
training (mlm_rate > 0) and without it (mlm_rate 0: the head stays as it was while the encoder
moves), plus NER F1 of both.

    python bench/eval_mlm_drift.py --base-model CHECKPOINT_WITH_MLM_HEAD --epochs 3

CHECKPOINT_WITH_MLM_HEAD: e.g. OUTPUT_DIR/final of `spacy-mlm pretrain` (the `ablation`
workflow's project/models/ablation/pretrained/final). Masked-token accuracy: 15% of the
wordpieces of held-out WikiText-2 test lines replaced by the mask token (same positions for
every model), top-1 prediction equals the original wordpiece; the same on the WNUT-17 dev
sentences (the NER domain, held out from training).
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
from common import append_jsonl, data_dir
from eval_tasks import NER_FILES, load_docs, run_spacy

from spacy_mlm.pretrain.score import load_scorer
from spacy_mlm.pretrain.tokenizer import iter_corpus_lines


@torch.no_grad()
def masked_token_accuracy(
    scorer: Any, texts: Sequence[str], rate: float = 0.15, seed: int = 0, max_length: int = 128
) -> Dict[str, float]:
    """Top-1 accuracy of the MLM on masked wordpieces; scorer: load_scorer(pipeline with
    fill_mask, or HF checkpoint)."""
    encoder, head, tokenizer = scorer
    encoder.eval()
    generator = torch.Generator().manual_seed(seed)
    hits = total = 0
    for i in range(0, len(texts), 32):
        enc = tokenizer(list(texts[i : i + 32]), truncation=True, max_length=max_length, padding=True,
                        return_tensors="pt", return_special_tokens_mask=True)
        special = enc.pop("special_tokens_mask").bool() | ~enc["attention_mask"].bool()
        # Drawn for every position of the padded batch, so the same texts get the same masks.
        chosen = (torch.rand(enc["input_ids"].shape, generator=generator) < rate) & ~special
        labels = enc["input_ids"][chosen]
        enc["input_ids"] = enc["input_ids"].masked_fill(chosen, tokenizer.mask_token_id)
        hidden = encoder(**enc).last_hidden_state
        predicted = head(hidden[chosen]).argmax(-1)
        hits += int((predicted == labels).sum())
        total += int(chosen.sum())
    return {"masked_token_accuracy": hits / total, "masked_tokens": total}


def main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-model", required=True, help="HF checkpoint with a trained MLM head")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--mlm-rates", default="0,0.15", help="comma-separated fill_mask mlm_rate values")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--max-train", type=int, default=0)
    parser.add_argument("--heldout-lines", type=int, default=400, help="WikiText-2 test lines to mask")
    parser.add_argument("--set", action="append", metavar="KEY=JSON",
                        help="config override for the NER training, as in eval_tasks.py, e.g. "
                        "'components.ner={\"factory\":\"trf_ner\",\"head_lr_scale\":10}' (repeatable)")
    parser.add_argument("--skip-before", action="store_true",
                        help="do not score the base model (already in the JSONL): one piece of a resumable sweep")
    parser.add_argument("--seed", type=int, default=0, help="training seed (spaCy's [system] seed)")
    parser.add_argument("--mask-seed", type=int, default=0,
                        help="the held-out texts' masks: one draw for every model and training seed")
    parser.add_argument("--gpu-id", type=int, default=-1)
    parser.add_argument("--out", type=Path, default=None, help="append the results as one JSON line")
    args = parser.parse_args(argv)
    root = data_dir(args.data_dir)
    train = load_docs(root / NER_FILES[0], "ner", args.max_train)
    dev = load_docs(root / NER_FILES[1], "ner")
    # Two held-out texts: Wikipedia (the pretraining domain) and the NER dev tweets (the domain
    # fill_mask trains on during NER; never trained on: only training sentences are masked).
    heldouts = {
        "wikitext2_test": list(iter_corpus_lines([root / "mlm" / "wikitext-2" / "test.txt"]))[: args.heldout_lines],
        "wnut17_dev": [doc.text for doc in dev],
    }

    def accuracies(model: str) -> Dict[str, float]:
        out: Dict[str, float] = {}
        scorer = load_scorer(model)  # once for every held-out text
        for name, texts in heldouts.items():
            acc = masked_token_accuracy(scorer, texts, seed=args.mask_seed)
            suffix = "" if name == "wikitext2_test" else f"_{name}"
            out.update({f"masked_token_accuracy{suffix}": acc["masked_token_accuracy"],
                        f"masked_tokens{suffix}": acc["masked_tokens"]})
        return out

    rows = []
    if not args.skip_before:
        before = accuracies(str(args.base_model))
        print(f"before NER training: {before}", file=sys.stderr)
        rows.append({"model": "base (before NER)", **before})
    for rate in (float(r) for r in args.mlm_rates.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            run_args = argparse.Namespace(**vars(args), mlm_rate=rate, save_dir=tmp, tag=f"mlm{rate}")
            ner = run_spacy("ner", train, dev, run_args)
            after = accuracies(str(Path(tmp) / f"ner-mlm{rate}"))
        row = {"model": f"after NER, fill_mask mlm_rate={rate}", **after, **ner}
        print(json.dumps(row), file=sys.stderr)
        rows.append(row)
    append_jsonl(args.out, {"base_model": str(args.base_model), "set": args.set, "seed": args.seed,
                            "mask_seed": args.mask_seed, "rows": rows,
                            "command": " ".join(["python", "bench/eval_mlm_drift.py", *(argv if argv is not None else sys.argv[1:])])})
    print(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
