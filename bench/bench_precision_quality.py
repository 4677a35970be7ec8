"""Quality (and CPU speed) of a trained pipeline with its shared transformer in fp32, int8 and bf16.

    python bench/bench_precision_quality.py PIPELINE [--dtypes fp32,int8,bf16] [--tasks ner,sst2,sts,fill_mask,disk]
        [--limit N] [--data-dir ../shared/data] [--out bench/results/precision_quality.jsonl]
    python bench/bench_precision_quality.py PIPELINE --recipes [--limit N]   # INT8 recipe sweep, encoder only
    python bench/bench_precision_quality.py PIPELINE --gpu-id 0 --dtypes fp32,bf16,fp16   # on a GPU

PIPELINE: an fp32 pipeline with transformer + fill_mask + an NER pipe + trf_textcat + trf_similarity
trained on WNUT-17 + SST-2 (BENCHMARKS.md says how). Tasks, each on the dev split:
  ner        WNUT-17 dev entity F1 (nlp.evaluate)
  sst2       SST-2 dev (sentence version) accuracy; mean cosine of doc.vector to the fp32 pipeline's
  sts        STS-B dev Spearman of doc.similarity
  fill_mask  SST-2 dev sentences with one word (seeded draw) replaced by [MASK]: top-1 agreement with fp32
  disk       bytes of the saved pipeline and of its transformer
Each (dtype, task, limit) row is appended to --out and skipped when already there (resumable).
The fp32 reference for cosine and agreement is computed in the same run. Times are wall seconds
of nlp.pipe (batch_size 64) on this machine's CPU with torch's default threads, or on --gpu-id.
"""

import argparse
import copy
import io
import json
import platform
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy
import spacy
import torch
from common import append_jsonl, data_dir, read_sts
from scipy.stats import spearmanr
from spacy.training import Example

from spacy_mlm import precision
from spacy_mlm.precision import quantize_pipeline
from spacy_mlm.readers import read_conll_ner, read_textcat

BATCH = 64


def cpu_flags() -> str:
    """The precision-relevant flags of spacy_mlm's one /proc/cpuinfo reader, as one string."""
    from spacy_mlm.pretrain.device import cpu_flags as all_flags

    flags = all_flags()
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    return ",".join(f for f in wanted if f in flags) or (platform.processor() if not flags else "none of " + ",".join(wanted))


def load(pipeline: str, dtype: str):
    nlp = spacy.load(pipeline)
    return nlp if dtype == "fp32" else quantize_pipeline(nlp, dtype)


def sst2_dev(root: Path, limit: Optional[int]) -> List:
    return list(read_textcat(root / "textcat" / "sst2-sentences" / "stsa.binary.dev"))[:limit]


def masked_sentences(docs, seed: int = 0) -> List[str]:
    """Each sentence with one word (alphabetic, 3+ characters, drawn with `seed`) replaced by [MASK]."""
    rng = random.Random(seed)
    out = []
    for doc in docs:
        words = [t for t in doc if t.is_alpha and len(t) >= 3]
        if not words:
            continue
        t = rng.choice(words)
        out.append(doc.text[: t.idx] + "[MASK]" + doc.text[t.idx + len(t.text):])
    return out


def timed_pipe(nlp, texts: List[str]):
    start = time.perf_counter()
    docs = list(nlp.pipe(texts, batch_size=BATCH))
    seconds = time.perf_counter() - start
    return docs, {"seconds": round(seconds, 3), "words_per_s": round(sum(len(d) for d in docs) / seconds, 1)}


def task_ner(nlp, root: Path, limit: Optional[int], _ref) -> Dict:
    gold = list(read_conll_ner(root / "ner" / "wnut17" / "emerging.dev.conll", vocab=nlp.vocab))[:limit]
    docs, timing = timed_pipe(nlp, [d.text for d in gold])
    scores = spacy.scorer.Scorer.score_spans([Example(p, g) for p, g in zip(docs, gold)], "ents")
    return {"ents_f": scores["ents_f"], "ents_p": scores["ents_p"], "ents_r": scores["ents_r"], "docs": len(gold),
            **timing}


def task_sst2(nlp, root: Path, limit: Optional[int], ref) -> Dict:
    gold = sst2_dev(root, limit)
    texts = [d.text for d in gold]
    docs, timing = timed_pipe(nlp, texts)
    correct = [max(d.cats, key=d.cats.get) == max(g.cats, key=g.cats.get) for d, g in zip(docs, gold)]
    vectors = numpy.stack([d.vector for d in docs])
    ref_vectors = numpy.stack([d.vector for d in ref.pipe(texts, batch_size=BATCH)]) if ref is not None else vectors
    cos = (vectors * ref_vectors).sum(1) / numpy.linalg.norm(vectors, axis=1) / numpy.linalg.norm(ref_vectors, axis=1)
    return {"accuracy": float(numpy.mean(correct)), "vector_cosine_mean": float(cos.mean()),
            "vector_cosine_min": float(cos.min()), "docs": len(gold), **timing}


def task_sts(nlp, root: Path, limit: Optional[int], _ref) -> Dict:
    rows = read_sts(root / "sts" / "stsbenchmark" / "sts-dev.csv")[:limit]
    docs, timing = timed_pipe(nlp, [r[1] for r in rows] + [r[2] for r in rows])
    n = len(rows)
    sims = [a.similarity(b) for a, b in zip(docs[:n], docs[n:])]
    return {"spearman": float(spearmanr(sims, [r[0] for r in rows]).correlation), "pairs": n, **timing}


def top1(nlp, texts: List[str]) -> List[int]:
    return [d._.fill_mask[0][0]["token"] if d._.fill_mask and d._.fill_mask[0] else -1
            for d in nlp.pipe(texts, batch_size=BATCH)]


def task_fill_mask(nlp, root: Path, limit: Optional[int], ref) -> Dict:
    texts = masked_sentences(sst2_dev(root, limit))
    start = time.perf_counter()
    got = top1(nlp, texts)
    seconds = time.perf_counter() - start
    expected = top1(ref, texts) if ref is not None else got
    return {"top1_agreement": float(numpy.mean([a == b for a, b in zip(got, expected)])), "sentences": len(texts),
            "seconds": round(seconds, 3)}


def task_disk(nlp, _root, _limit, _ref) -> Dict:
    with tempfile.TemporaryDirectory() as tmp:
        nlp.to_disk(Path(tmp) / "p")
        total = sum(p.stat().st_size for p in (Path(tmp) / "p").rglob("*") if p.is_file())
        encoder = (Path(tmp) / "p" / "transformer" / "model").stat().st_size
        shutil.rmtree(Path(tmp) / "p")
    return {"pipeline_bytes": total, "transformer_bytes": encoder}


TASKS = {"ner": task_ner, "sst2": task_sst2, "sts": task_sts, "fill_mask": task_fill_mask, "disk": task_disk}


def done(out: Path) -> set:
    if not out.is_file():
        return set()
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return {(r["pipeline"], r["dtype"], r["task"], r.get("limit"), r.get("recipe", "default")) for r in rows}


def recipe_sweep(pipeline: str, root: Path, limit: Optional[int], out: Path) -> None:
    """INT8 variants of the pipeline's encoder alone: mean-pooled sentence-vector cosine to fp32 on
    SST-2 dev, for Linear layers left in fp32 and the embedding matrix kept fp32 or INT8 rows; with a
    fill_mask pipe, also its top-1 agreement with fp32 (and where fp32's top-1 wins by > 0.05)."""
    nlp = spacy.load(pipeline)
    encoder = nlp.get_pipe("transformer").model.transformer.eval()
    tokenizer = nlp.get_pipe("transformer").model.tokenizer
    texts = [d.text for d in sst2_dev(root, limit)]

    def vectors(model) -> numpy.ndarray:
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), BATCH):
                enc = tokenizer(texts[i:i + BATCH], padding=True, truncation=True, return_tensors="pt")
                hidden = model(**enc).last_hidden_state.float()
                mask = enc["attention_mask"].unsqueeze(-1).float()
                out.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
        return numpy.concatenate(out)

    # With a fill_mask pipe: top-1 of its head at one [MASK] per sentence (the `fill_mask` task's
    # sentences), run by hand on the reduced encoder copy with the head re-tied to its embeddings.
    fill_mask = nlp.get_pipe("fill_mask") if "fill_mask" in nlp.pipe_names else None
    masked = masked_sentences(sst2_dev(root, limit)) if fill_mask is not None else []

    def mask_top(model) -> numpy.ndarray:
        """Per masked sentence: top-1 id, its probability and the margin to the second."""
        head = copy.deepcopy(fill_mask.tied_head())
        head.tie_to(model.get_input_embeddings())
        rows = []
        with torch.no_grad():
            for i in range(0, len(masked), BATCH):
                enc = tokenizer(masked[i:i + BATCH], padding=True, truncation=True, return_tensors="pt")
                at = enc["input_ids"] == tokenizer.mask_token_id
                probs = head(model(**enc).last_hidden_state[at].float()).softmax(-1)
                top = probs.topk(2, dim=-1)
                rows.append(numpy.stack([top.indices[:, 0].numpy(), top.values[:, 0].numpy(),
                                         (top.values[:, 0] - top.values[:, 1]).numpy()], axis=1))
        return numpy.concatenate(rows)

    reference = vectors(encoder)
    reference_top = mask_top(encoder) if fill_mask is not None else None
    n_layers = encoder.config.num_hidden_layers
    recipes = {
        "all Linear int8, embeddings int8 rows": ((), True),
        "all Linear int8, embeddings fp32": ((), False),
        "last layer fp32": ((f"layer.{n_layers - 1}.attention.self.query", f"layer.{n_layers - 1}.attention.self.key",
                             f"layer.{n_layers - 1}.attention.self.value",
                             f"layer.{n_layers - 1}.attention.output.dense",
                             f"layer.{n_layers - 1}.intermediate.dense", f"layer.{n_layers - 1}.output.dense"), True),
        "attention output fp32": (("attention.output.dense",), True),
        "FFN output fp32": (tuple(f"layer.{i}.output.dense" for i in range(n_layers)), True),
    }
    seen = done(out)

    for name, (fp32_modules, int8_embeddings) in recipes.items():
        if (pipeline, "int8", "recipe", limit, name) in seen:
            continue
        model = copy.deepcopy(encoder)
        precision.reduce_precision(model, "int8", fp32_modules=fp32_modules, int8_embeddings=int8_embeddings)
        got = vectors(model)
        cos = (got * reference).sum(1) / numpy.linalg.norm(got, axis=1) / numpy.linalg.norm(reference, axis=1)
        if fill_mask is not None:
            top = mask_top(model)
            agree = top[:, 0] == reference_top[:, 0]
            margin = reference_top[:, 2]
            fill = {"masks": len(top), "top1_agreement": float(agree.mean()),
                    "fp32_margin_median": float(numpy.median(margin)),
                    "agreement_where_fp32_margin_over_0.05": float(agree[margin > 0.05].mean()),
                    "share_fp32_margin_over_0.05": float((margin > 0.05).mean())}
        else:
            fill = {}
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        row = {"pipeline": pipeline, "dtype": "int8", "task": "recipe", "recipe": name, "limit": limit,
               "sentences": len(texts), "vector_cosine_mean": float(cos.mean()), "vector_cosine_min": float(cos.min()),
               "state_bytes": len(buf.getvalue()), **fill, "cpu": cpu_flags(), "torch_threads": torch.get_num_threads()}
        print(json.dumps(row))
        append_jsonl(out, row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline")
    parser.add_argument("--dtypes", default="fp32,int8,bf16")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--limit", type=int, default=None, help="First N dev examples of each task.")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "precision_quality.jsonl")
    parser.add_argument("--recipes", action="store_true", help="The INT8 recipe sweep instead of the tasks.")
    parser.add_argument("--gpu-id", type=int, default=-1, help="Load and run the pipelines on this GPU.")
    args = parser.parse_args()
    device = "cpu"
    if args.gpu_id >= 0:
        spacy.require_gpu(args.gpu_id)  # before spacy.load: the encoder and the heads go to the GPU
        device = torch.cuda.get_device_name(args.gpu_id)
    root = data_dir(args.data_dir)
    if args.recipes:
        recipe_sweep(args.pipeline, root, args.limit, args.out)
        return
    seen = done(args.out)
    reference = None
    for dtype in args.dtypes.split(","):
        todo = [t for t in args.tasks.split(",") if (args.pipeline, dtype, t, args.limit, "default") not in seen]
        if not todo:
            continue
        nlp = load(args.pipeline, dtype)
        if dtype != "fp32" and reference is None and {"sst2", "fill_mask"} & set(todo):
            reference = load(args.pipeline, "fp32")
        for task in todo:
            row = {"pipeline": args.pipeline, "dtype": dtype, "task": task, "limit": args.limit,
                   **TASKS[task](nlp, root, args.limit, reference if dtype != "fp32" else None),
                   "cpu": cpu_flags(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                   "device": device}
            print(json.dumps(row), flush=True)
            append_jsonl(args.out, row)


if __name__ == "__main__":
    main()
