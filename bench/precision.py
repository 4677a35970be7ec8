"""Quality (and CPU speed) of a trained pipeline with its shared transformer in fp32, int8, bf16 or fp16,
and the INT8 recipe sweep of its encoder.

PIPELINE: an fp32 pipeline with transformer + fill_mask + an NER pipe + trf_textcat + trf_similarity
trained on WNUT-17 + SST-2 (BENCHMARKS.md says how). Rows are appended to --out and skipped when
already there for the same pipeline, dtype, task, limit, recipe and device (resumable).
"""

import copy
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import click

from bench.common import RESULTS, append_row, data_dir, device, read_rows, read_sts

OUT = RESULTS / "precision.jsonl"
BATCH = 64


def sst2_dev(root: Path, limit: Optional[int]) -> List:
    from spacy_mlm.readers import read_textcat

    return list(read_textcat(root / "textcat" / "sst2-sentences" / "stsa.binary.dev"))[:limit]


def masked_sentences(docs, seed: int = 0) -> List[str]:
    """Each sentence with one word (alphabetic, 3+ characters, drawn with `seed`) replaced by [MASK]."""
    rng = random.Random(seed)
    out = []
    for doc in docs:
        words = [t for t in doc if t.is_alpha and len(t) >= 3]
        if words:
            t = rng.choice(words)
            out.append(doc.text[: t.idx] + "[MASK]" + doc.text[t.idx + len(t.text):])
    return out


def timed_pipe(nlp, texts: List[str]):
    start = time.perf_counter()
    docs = list(nlp.pipe(texts, batch_size=BATCH))
    seconds = time.perf_counter() - start
    return docs, {"seconds": round(seconds, 3), "words_per_s": round(sum(len(d) for d in docs) / seconds, 1)}


def task_ner(nlp, root: Path, limit: Optional[int], _ref) -> Dict:
    """WNUT-17 dev entity F1."""
    from spacy.scorer import Scorer
    from spacy.training import Example

    from spacy_mlm.readers import read_conll_ner

    gold = list(read_conll_ner(root / "ner" / "wnut17" / "emerging.dev.conll", vocab=nlp.vocab))[:limit]
    docs, timing = timed_pipe(nlp, [d.text for d in gold])
    scores = Scorer.score_spans([Example(p, g) for p, g in zip(docs, gold)], "ents")
    return {"ents_f": scores["ents_f"], "ents_p": scores["ents_p"], "ents_r": scores["ents_r"], "docs": len(gold), **timing}


def task_sst2(nlp, root: Path, limit: Optional[int], ref) -> Dict:
    """SST-2 dev (sentences) accuracy; cosine of doc.vector to the fp32 pipeline's."""
    import numpy

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
    """STS-B dev Spearman of doc.similarity."""
    from scipy.stats import spearmanr

    rows = read_sts(root / "sts" / "stsbenchmark" / "sts-dev.csv")[:limit]
    docs, timing = timed_pipe(nlp, [r[1] for r in rows] + [r[2] for r in rows])
    n = len(rows)
    sims = [a.similarity(b) for a, b in zip(docs[:n], docs[n:])]
    return {"spearman": float(spearmanr(sims, [r[0] for r in rows]).correlation), "pairs": n, **timing}


def top1(nlp, texts: List[str]) -> List[int]:
    return [d._.fill_mask[0][0]["token"] if d._.fill_mask and d._.fill_mask[0] else -1
            for d in nlp.pipe(texts, batch_size=BATCH)]


def task_fill_mask(nlp, root: Path, limit: Optional[int], ref) -> Dict:
    """SST-2 dev sentences, one word (seeded draw) masked: top-1 agreement with fp32."""
    texts = masked_sentences(sst2_dev(root, limit))
    start = time.perf_counter()
    got = top1(nlp, texts)
    seconds = time.perf_counter() - start
    expected = top1(ref, texts) if ref is not None else got
    return {"top1_agreement": sum(a == b for a, b in zip(got, expected)) / len(got), "sentences": len(texts),
            "seconds": round(seconds, 3)}


def task_disk(nlp, _root, _limit, _ref) -> Dict:
    """Bytes of the saved pipeline and of its transformer."""
    with tempfile.TemporaryDirectory() as tmp:
        nlp.to_disk(Path(tmp) / "p")
        total = sum(p.stat().st_size for p in (Path(tmp) / "p").rglob("*") if p.is_file())
        return {"pipeline_bytes": total, "transformer_bytes": (Path(tmp) / "p" / "transformer" / "model").stat().st_size}


TASKS = {"ner": task_ner, "sst2": task_sst2, "sts": task_sts, "fill_mask": task_fill_mask, "disk": task_disk}


def done(out: Path, where: str) -> set:
    return {(r.get("pipeline"), r.get("dtype"), r.get("task"), r.get("limit"), r.get("recipe", "default"))
            for r in read_rows(out) if r.get("device") == where}


suite = click.Group("precision", help=__doc__)
pipeline_arg = click.argument("pipeline")
limit_opt = click.option("--limit", type=int, default=None, help="First N dev examples of each task.")
data_opt = click.option("--data-dir", "data_dir_", default=None)
out_opt = click.option("--out", type=Path, default=OUT, show_default=True)


@suite.command()
@pipeline_arg
@click.option("--dtypes", default="fp32,int8,bf16", show_default=True)
@click.option("--tasks", "task_names", default=",".join(TASKS), show_default=True,
              help="ner, sst2, sts, fill_mask (vs fp32), disk: each on its dev split.")
@limit_opt
@data_opt
@out_opt
@click.option("--gpu-id", default=-1, help="Load and run the pipelines on this GPU.")
def quality(pipeline, dtypes, task_names, limit, data_dir_, out, gpu_id) -> None:
    """Each task's score for each dtype (`quantize_pipeline`, what `spacy-mlm quantize` writes). The fp32
    reference for cosine and agreement is computed in the same run; times are wall seconds of nlp.pipe
    (batch 64) with torch's default threads, or on --gpu-id."""
    import spacy
    import torch

    from spacy_mlm.precision import quantize_pipeline

    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)  # before spacy.load: the encoder and the heads go to the GPU
    root, seen, reference = data_dir(data_dir_), done(out, device(gpu_id)), None
    for dtype in dtypes.split(","):
        todo = [t for t in task_names.split(",") if (pipeline, dtype, t, limit, "default") not in seen]
        if not todo:
            continue
        nlp = spacy.load(pipeline) if dtype == "fp32" else quantize_pipeline(spacy.load(pipeline), dtype)
        if dtype != "fp32" and reference is None and {"sst2", "fill_mask"} & set(todo):
            reference = spacy.load(pipeline)
        for task in todo:
            row = {"pipeline": pipeline, "dtype": dtype, "task": task, "limit": limit,
                   **TASKS[task](nlp, root, limit, reference if dtype != "fp32" else None),
                   "torch_threads": torch.get_num_threads()}
            click.echo(json.dumps(append_row(out, row, gpu_id)))


@suite.command()
@pipeline_arg
@limit_opt
@data_opt
@out_opt
def recipes(pipeline, limit, data_dir_, out) -> None:
    """INT8 variants of the pipeline's encoder alone: mean-pooled sentence-vector cosine to fp32 on SST-2
    dev, for Linear layers left in fp32 and the embedding matrix kept fp32 or INT8 rows; with a fill_mask
    pipe, also its top-1 agreement with fp32 (and where fp32's top-1 wins by > 0.05)."""
    import io

    import numpy
    import spacy
    import torch

    from spacy_mlm.precision import reduce_precision

    root = data_dir(data_dir_)
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
                top = head(model(**enc).last_hidden_state[at].float()).softmax(-1).topk(2, dim=-1)
                rows.append(numpy.stack([top.indices[:, 0].numpy(), top.values[:, 0].numpy(),
                                         (top.values[:, 0] - top.values[:, 1]).numpy()], axis=1))
        return numpy.concatenate(rows)

    reference = vectors(encoder)
    reference_top = mask_top(encoder) if fill_mask is not None else None
    last = f"layer.{encoder.config.num_hidden_layers - 1}."
    variants = {
        "all Linear int8, embeddings int8 rows": ((), True),
        "all Linear int8, embeddings fp32": ((), False),
        "last layer fp32": (tuple(last + m for m in ("attention.self.query", "attention.self.key", "attention.self.value",
                                                     "attention.output.dense", "intermediate.dense", "output.dense")), True),
        "attention output fp32": (("attention.output.dense",), True),
        "FFN output fp32": (tuple(f"layer.{i}.output.dense" for i in range(encoder.config.num_hidden_layers)), True),
    }
    seen = done(out, device())
    for name, (fp32_modules, int8_embeddings) in variants.items():
        if (pipeline, "int8", "recipe", limit, name) in seen:
            continue
        model = copy.deepcopy(encoder)
        reduce_precision(model, "int8", fp32_modules=fp32_modules, int8_embeddings=int8_embeddings)
        got = vectors(model)
        cos = (got * reference).sum(1) / numpy.linalg.norm(got, axis=1) / numpy.linalg.norm(reference, axis=1)
        fill = {}
        if fill_mask is not None:
            top = mask_top(model)
            agree, margin = top[:, 0] == reference_top[:, 0], reference_top[:, 2]
            fill = {"masks": len(top), "top1_agreement": float(agree.mean()), "fp32_margin_median": float(numpy.median(margin)),
                    "agreement_where_fp32_margin_over_0.05": float(agree[margin > 0.05].mean()),
                    "share_fp32_margin_over_0.05": float((margin > 0.05).mean())}
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        row = {"pipeline": pipeline, "dtype": "int8", "task": "recipe", "recipe": name, "limit": limit,
               "sentences": len(texts), "vector_cosine_mean": float(cos.mean()), "vector_cosine_min": float(cos.min()),
               "state_bytes": len(buf.getvalue()), **fill, "torch_threads": torch.get_num_threads()}
        click.echo(json.dumps(append_row(out, row)))


COMMANDS = (suite,)
