"""The five-pipe shared-encoder pipeline at inference: throughput against the four HF pipelines doing
the same jobs, what its heads cost, its memory over many docs.

Docs (throughput, heads): --n-docs sentences, half SST-2, half WNUT-17 train, one word of each
replaced by [MASK]. Checkpoint: all-MiniLM-L6-v2's encoder (or --checkpoint) with a fresh MLM head;
the heads of both sides are untrained (speed does not depend on the head's weights; NER has WNUT-17's
13 BIO labels, textcat SST-2's 2). Each measurement runs once to warm up, then --rounds interleaved
rounds; medians reported, every round's time in the row. Run it alone: ratios need a quiet machine.
"""

import json
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import click

from bench.common import RESULTS, append_row, checkpoint, data_dir, interleaved
from bench.eval_tasks import NER_FILES, TEXTCAT_FILES, load_docs

OUT = RESULTS / "pipes.jsonl"
NER_LABELS = [f"{p}-{t}" for t in ("corporation", "creative-work", "group", "location", "person", "product") for p in "BI"]


def load_texts(root: Path, n: int, seed: int = 0) -> List[str]:
    """n sentences, half SST-2 and half WNUT-17, with one word (not the first) masked."""
    rng = random.Random(seed)
    sst = [d.text.split() for d in load_docs(root / TEXTCAT_FILES[0], "textcat")]
    wnut = [[t.text for t in d] for d in load_docs(root / NER_FILES[0], "ner")]
    texts = []
    for pool, k in ((sst, n // 2), (wnut, n - n // 2)):
        for words in [w for w in pool if len(w) >= 3][:k]:
            words = list(words)
            words[rng.randrange(1, len(words))] = "[MASK]"
            texts.append(" ".join(words))
    return texts


def make_checkpoint(out: Path, base: Optional[str] = None, random_weights: bool = False) -> str:
    """The base encoder (default all-MiniLM-L6-v2) with a fresh MLM head; or, with random_weights, its
    architecture and tokenizer with seeded random weights (speed only: no weights file needed)."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, BertForMaskedLM

    base = checkpoint(base)
    if random_weights:
        torch.manual_seed(0)
        BertForMaskedLM(AutoConfig.from_pretrained(str(base))).save_pretrained(str(out / "ckpt"))
    else:
        BertForMaskedLM.from_pretrained(str(base)).save_pretrained(str(out / "ckpt"))
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(out / "ckpt"))
    return str(out / "ckpt")


def five_pipe_pipeline(ckpt: str, texts: List[str]):
    """transformer + fill_mask + trf_tagger_ner + trf_textcat + trf_similarity, initialized untrained."""
    import spacy
    from spacy.training import Example

    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": ckpt}})
    for name in ("fill_mask", "trf_tagger_ner", "trf_textcat", "trf_similarity"):
        nlp.add_pipe(name)
    for label in sorted({label[2:] for label in NER_LABELS}):
        nlp.get_pipe("trf_tagger_ner").add_label(label)
    sample = [Example.from_dict(nlp.make_doc(text), {"cats": {"POS": float(i % 2), "NEG": float(1 - i % 2)}})
              for i, text in enumerate(texts[:8])]
    nlp.initialize(lambda: sample)
    return nlp


def speed_options(fn):
    """The options `throughput` and `heads` share: data, docs, batches, rounds, encoder, device, output."""
    for option in reversed([
        click.option("--data-dir", "data_dir_", default=None),
        click.option("--n-docs", default=1000, show_default=True),
        click.option("--batch-size", default=64, show_default=True),
        click.option("--rounds", default=5, show_default=True),
        click.option("--checkpoint", "base", default=None, help="HF encoder checkpoint (default: all-MiniLM-L6-v2)."),
        click.option("--random-weights", is_flag=True, help="Only --checkpoint's config and tokenizer, seeded random weights."),
        click.option("--gpu-id", default=-1, help="Run on this GPU (fp16 needs one)."),
        click.option("--out", type=Path, default=OUT, show_default=True),
    ]):
        fn = option(fn)
    return fn


suite = click.Group("pipes", help=__doc__)


@suite.command()
@speed_options
@click.option("--dtypes", default="fp32", help="Precisions of the shared transformer, e.g. fp32,int8.")
@click.option("--threads", type=int, default=None, help="torch threads (default: torch's).")
@click.option("--precision-only", is_flag=True, help="Only the rows that compare --dtypes, not the HF pipelines.")
def throughput(data_dir_, n_docs, batch_size, rounds, base, random_weights, gpu_id, out, dtypes, threads,
               precision_only) -> None:
    """Five pipes vs the four HF pipelines, decomposed; spaCy's overhead; reduced precision.

    \b
    1. hf_4_pipelines_default: pipeline("fill-mask"), ("token-classification", aggregation "simple"),
       ("text-classification"), ("feature-extraction") + mean pooling, docs in input order.
    2. hf_4_pipelines_sorted: the same, fed the length-sorted sub-batches spacy-transformers forms.
    3. hf_shared_pass_all_positions: one HF encoder pass per sub-batch, the four heads on it, the MLM head
       over every position as pipeline("fill-mask") does.
    4. hf_shared_pass_mask_only: 3. with the MLM head on the [MASK] positions only.
    5. spacy_mlm_five_pipes_<dtype>: the five pipes through nlp.pipe.
    Overhead: spacy_transformer_only_<dtype> (the transformer alone) vs hf_raw_forward_same_batches_<dtype>.
    """
    import copy

    import spacy
    import torch
    import transformers as hf_
    from spacy_transformers.util import batch_by_length
    from transformers import AutoTokenizer, pipeline

    from spacy_mlm.precision import TORCH_DTYPE, quantize_pipeline, reduce_precision

    if threads:
        torch.set_num_threads(threads)
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)  # before any pipeline is built: spacy-transformers puts it on the GPU
    device = torch.device(f"cuda:{gpu_id}") if gpu_id >= 0 else torch.device("cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    texts = load_texts(data_dir(data_dir_), n_docs)
    bs = batch_size
    ckpt = make_checkpoint(Path(tempfile.mkdtemp()), base, random_weights)
    fp32 = five_pipe_pipeline(ckpt, texts)
    dtypes = dtypes.split(",")
    pipelines = {dtype: fp32 if dtype == "fp32" else quantize_pipeline(fp32, dtype) for dtype in dtypes}
    # The HF side: four task models from the same checkpoint (the same encoder weights).
    tok = AutoTokenizer.from_pretrained(ckpt)
    mlm = hf_.AutoModelForMaskedLM.from_pretrained(ckpt).eval().to(device)
    tagger = hf_.AutoModelForTokenClassification.from_pretrained(ckpt, num_labels=len(NER_LABELS) + 1).eval().to(device)
    tagger.config.id2label = dict(enumerate(["O", *NER_LABELS]))
    tagger.config.label2id = {label: i for i, label in tagger.config.id2label.items()}
    classifier = hf_.AutoModelForSequenceClassification.from_pretrained(ckpt, num_labels=2).eval().to(device)
    encoder = hf_.AutoModel.from_pretrained(ckpt).eval().to(device)
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
    same_batches = [[docs[i + j].text for j in indices] for i in range(0, len(docs), bs)
                    for indices in batch_by_length(docs[i : i + bs], max_items)]
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

    encoders = {d: encoder if d == "fp32" else reduce_precision(copy.deepcopy(encoder), d) for d in dtypes}

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
            with nlp.select_pipes(enable=enable or nlp.pipe_names):
                list(nlp.pipe(texts, batch_size=bs))

        return run

    fns: Dict[str, Callable[[], None]] = {} if precision_only else {
        "hf_4_pipelines_default": hf_four_pipelines(input_order),
        "hf_4_pipelines_sorted": hf_four_pipelines(same_batches),
        "hf_shared_pass_all_positions": hf_shared_pass(mask_only=False),
        "hf_shared_pass_mask_only": hf_shared_pass(mask_only=True),
    }
    for dtype in dtypes:
        fns[f"spacy_mlm_five_pipes_{dtype}"] = ours(pipelines[dtype])
        fns[f"spacy_transformer_only_{dtype}"] = ours(pipelines[dtype], ["transformer"])
        fns[f"hf_raw_forward_same_batches_{dtype}"] = hf_forward_same_batches(encoders[dtype], dtype)
    times = interleaved(fns, rounds, sync)
    median = {name: statistics.median(t) for name, t in times.items()}
    words = sum(len(d) for d in docs)
    ratio = lambda a, b: round(median[a] / median[b], 3)  # noqa: E731
    row = append_row(out, {
        "bench": "pipes_v2", "docs": len(texts), "words": words, "batch_size": bs, "rounds": rounds,
        "torch_threads": torch.get_num_threads(),
        "checkpoint": "all-MiniLM-L6-v2" if base is None else Path(base).name, "random_weights": random_weights,
        "median_seconds": {k: round(v, 3) for k, v in median.items()},
        "round_seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "docs_per_s": {k: round(len(texts) / v, 1) for k, v in median.items()},
        "speedup_vs_hf_4_pipelines_default": None if precision_only else {
            k: ratio("hf_4_pipelines_default", k) for k in median},
        "transformer_overhead_vs_hf": {d: ratio(f"spacy_transformer_only_{d}", f"hf_raw_forward_same_batches_{d}")
                                       for d in dtypes},
        "pipeline_words_per_s": {d: round(words / median[f"spacy_mlm_five_pipes_{d}"], 1) for d in dtypes},
        "speedup_vs_fp32_pipeline": {d: ratio("spacy_mlm_five_pipes_fp32", f"spacy_mlm_five_pipes_{d}")
                                     for d in dtypes if "fp32" in dtypes},
    }, gpu_id)
    click.echo(row_summary(row))


@suite.command()
@speed_options
@click.option("--threads", default=2, show_default=True)
@click.option("--code", type=Path, default=None,
              help="Import spacy_mlm from this folder (a checkout or copy of another version): an A/B of two codes.")
def heads(data_dir_, n_docs, batch_size, rounds, base, random_weights, gpu_id, out, threads, code) -> None:
    """Seconds each head spends over docs the transformer has already encoded (what the heads add to the
    encoder pass; on a GPU, or with a bf16/INT8 encoder on CPU, most of the pipeline's time).

    The docs and pipeline of `throughput`. The transformer runs once; then every head runs over the same
    encoded docs, once to warm up and --rounds times interleaved; medians. A fingerprint of the
    annotations (entities, fill-mask ids, cats, doc vectors) is recorded, so that two code versions
    (--code, run alternately) can be checked to annotate alike.
    """
    if code is not None:
        sys.path.insert(0, str(code.resolve()))
    import hashlib

    import numpy
    import spacy
    import torch

    import spacy_mlm

    torch.set_num_threads(threads)
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)  # before the pipeline is built
    sync = torch.cuda.synchronize if gpu_id >= 0 else (lambda: None)
    where = Path(spacy_mlm.__file__).parent
    git = ["git", "-C", str(where.parent)]
    code_commit = ""
    if (where.parent / ".git").exists():  # the commit of the checkout whose spacy_mlm/ ran
        code_commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        if subprocess.run([*git, "status", "--porcelain", "--", "spacy_mlm"], capture_output=True, text=True).stdout.strip():
            code_commit += "+dirty"
    torch.manual_seed(0)
    numpy.random.seed(0)  # the heads' initial weights
    texts = load_texts(data_dir(data_dir_), n_docs)
    nlp = five_pipe_pipeline(make_checkpoint(Path(tempfile.mkdtemp()), base, random_weights), texts)
    with nlp.select_pipes(enable=["transformer"]):
        docs = list(nlp.pipe(texts, batch_size=batch_size))
    names = [name for name in nlp.pipe_names if name != "transformer"]
    times = interleaved({name: (lambda name=name: list(nlp.get_pipe(name).pipe(docs, batch_size=batch_size)))
                         for name in names}, rounds, sync)
    fingerprint = hashlib.sha256()
    for doc in docs:
        fingerprint.update(repr([(e.start, e.end, e.label_) for e in doc.ents]).encode())
        fingerprint.update(repr([x["token"] for m in (doc._.fill_mask or []) for x in m]).encode())
        fingerprint.update(repr(sorted((k, round(v, 5)) for k, v in doc.cats.items())).encode())
        fingerprint.update(numpy.round(numpy.asarray(doc._.trf_vector), 5).tobytes())
    median = {name: statistics.median(t) for name, t in times.items()}
    row = append_row(out, {
        "bench": "heads_v1", "code": str(where), "code_commit": code_commit, "docs": len(docs),
        "words": sum(len(d) for d in docs), "rounds": rounds, "torch_threads": torch.get_num_threads(),
        "random_weights": random_weights, "median_seconds": {k: round(v, 4) for k, v in median.items()},
        "heads_total_seconds": round(sum(median.values()), 4),
        "round_seconds": {k: [round(x, 4) for x in v] for k, v in times.items()},
        "annotations_sha256": fingerprint.hexdigest()[:16], "entities": sum(len(d.ents) for d in docs),
    }, gpu_id)
    click.echo(row_summary(row))


# -- memory over many docs ---------------------------------------------------------------------------
WORDS = ("the capital of france is paris a city in europe with many people and old buildings london berlin madrid "
         "rome river bridge museum park street market train station north south east west small large new famous "
         "beautiful quiet busy").split()
ALL_PIPES = ("fill_mask", "trf_ner", "trf_textcat", "trf_similarity")


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def memory_texts(n: int, mask: str, seed: int = 0) -> Iterator[str]:
    rng = random.Random(seed)
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 20))]
        if i % 3 == 0:
            words[rng.randrange(len(words))] = mask
        yield " ".join(words)


def tiny_checkpoint(root: Path) -> Path:
    """A tiny random BERT with a WordPiece vocabulary of WORDS (as the tests build)."""
    from spacy_mlm.pretrain.init_model import init_model
    from spacy_mlm.pretrain.tokenizer import train_tokenizer

    rng = random.Random(0)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 15))) for _ in range(400)]
    train_tokenizer(corpus, root / "tokenizer", vocab_size=300, kind="wordpiece")
    init_model(root / "bert", root / "tokenizer", arch="bert", size="tiny", initializer_range=0.2)
    return root / "bert"


def memory_pipeline(checkpoint: str, pipes: Sequence[str]):
    import spacy
    from spacy.training import Example

    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": checkpoint}})
    for pipe in pipes:
        nlp.add_pipe(pipe)
    examples = []
    if "trf_ner" in pipes:
        examples.append(Example.from_dict(nlp.make_doc("paris is a city"), {"entities": [(0, 5, "LOC")]}))
    if "trf_textcat" in pipes:
        for text, label in (("a quiet park", "POS"), ("a busy market", "NEG")):
            cats = {"POS": float(label == "POS"), "NEG": float(label == "NEG")}
            examples.append(Example.from_dict(nlp.make_doc(text), {"cats": cats}))
    nlp.initialize(lambda: examples)
    return nlp


def measure(checkpoint: Optional[str], n: int = 100_000, checkpoints: Optional[Sequence[int]] = None,
            pipes: Sequence[str] = ALL_PIPES, batch_size: int = 64) -> Dict:
    """RSS (MB) after each count in `checkpoints` (default: n//10 and n) and every tenth of n."""
    import gc
    import time

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = checkpoint or str(tiny_checkpoint(Path(tmp)))
        nlp = memory_pipeline(checkpoint, pipes)
        mask = nlp.get_pipe("fill_mask").mask_token if "fill_mask" in pipes else "[MASK]"
        marks = sorted(set(checkpoints or (max(1, n // 10), n)) | {max(1, n * k // 10) for k in range(1, 11)})
        rss, n_masks, start = {}, 0, time.perf_counter()
        for i, doc in enumerate(nlp.pipe(memory_texts(n, mask), batch_size=batch_size), 1):
            n_masks += len(doc._.fill_mask or []) if doc.has_extension("fill_mask") else 0
            if i in marks:
                gc.collect()
                rss[i] = round(rss_mb(), 1)
                print(f"{i:>8} docs  RSS {rss[i]:8.1f} MB  {time.perf_counter() - start:7.1f}s", file=sys.stderr)
        first, last = (checkpoints or (max(1, n // 10), n))[0], (checkpoints or (n,))[-1]
        return {
            "n_docs": n, "pipes": list(pipes), "batch_size": batch_size, "checkpoint": checkpoint,
            "masks_filled": n_masks, "rss_mb": rss, "rss_first_mb": rss[first], "rss_last_mb": rss[last],
            "first_at": first, "last_at": last, "growth_pct": round(100.0 * (rss[last] - rss[first]) / rss[first], 2),
            "seconds": round(time.perf_counter() - start, 1), "vocab_strings": len(nlp.vocab.strings),
            "fill_mask_token_cache": len(nlp.get_pipe("fill_mask")._token_str_cache) if "fill_mask" in pipes else 0,
        }


@suite.command()
@click.option("--n", default=100_000, show_default=True, help="Number of docs.")
@click.option("--checkpoint", default=None, help="HF MLM checkpoint (default: a tiny random BERT).")
@click.option("--pipes", "pipe_names", default=",".join(ALL_PIPES), show_default=True)
@click.option("--batch-size", default=64, show_default=True)
@click.option("--out", type=Path, default=OUT, show_default=True)
def memory(n, checkpoint, pipe_names, batch_size, out) -> None:
    """Resident memory of nlp.pipe over N short docs (every third with a mask token, none kept): VmRSS after
    10% of them and after all (growth in %; goal < 5%), and every tenth. The words come from a fixed list, so
    spaCy's vocab (which grows with every new string, by design) stays bounded and hides no leak."""
    result = measure(checkpoint, n, pipes=[p for p in pipe_names.split(",") if p], batch_size=batch_size)
    click.echo(row_summary(append_row(out, {"bench": "memory", **result})))


def row_summary(row: Dict) -> str:
    """A row without its per-round times, for the terminal."""
    return json.dumps({k: v for k, v in row.items() if k != "round_seconds"}, indent=1)


COMMANDS = (suite,)
