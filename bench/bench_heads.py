"""Seconds each head of the five-pipe pipeline spends per batch of docs the transformer has
already encoded: what the heads add to the encoder pass in nlp.pipe (on a GPU, or with
a bf16/INT8 encoder on CPU, this CPU-side work is most of the pipeline's time).

    python bench/bench_heads.py [--n-docs 1000] [--rounds 5] [--out bench/results/heads.jsonl]

Same docs and pipeline as bench_pipes.py (half SST-2, half WNUT-17 train sentences, one [MASK]
each; all-MiniLM-L6-v2 with untrained heads). The transformer runs once; then every head runs over
the same encoded docs, once to warm up and --rounds times interleaved (fill_mask, tagger, textcat,
similarity, then again), medians reported. A fingerprint of the annotations (entities, fill-mask
ids, cats, doc vectors) is recorded, so that two code versions can be checked to annotate alike.
To compare two versions of spacy_mlm, run this script alternately with PYTHONPATH pointing at a
checkout of each (`git worktree add ../old COMMIT`): the row records which code ran.
"""

import hashlib
import json
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

import numpy
import torch
from bench_pipes import five_pipe_pipeline, interleaved, load_texts, make_checkpoint, speed_arguments
from common import append_jsonl, data_dir


def main() -> None:
    parser = speed_arguments(__doc__, "heads.jsonl")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.gpu_id >= 0:
        import spacy

        spacy.require_gpu(args.gpu_id)  # before the pipeline is built
    sync = torch.cuda.synchronize if args.gpu_id >= 0 else (lambda: None)
    import spacy_mlm

    code = Path(spacy_mlm.__file__).parent
    commit = dirty = ""
    try:  # the commit of the checkout whose spacy_mlm/ ran (none for a copy outside a checkout's root)
        top = subprocess.run(["git", "-C", str(code), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True).stdout.strip()
        if top and Path(top).resolve() == code.parent.resolve():
            commit = subprocess.run(["git", "-C", top, "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip()
            dirty = subprocess.run(["git", "-C", top, "status", "--porcelain", "--", "spacy_mlm"], capture_output=True,
                                   text=True).stdout.strip()
    except FileNotFoundError:  # no git (a lent GPU machine): the row's `code` path says which copy ran
        pass
    torch.manual_seed(0)
    numpy.random.seed(0)  # the heads' initial weights
    texts = load_texts(data_dir(args.data_dir), args.n_docs)
    nlp = five_pipe_pipeline(make_checkpoint(Path(tempfile.mkdtemp()), args.checkpoint, args.random_weights), texts)
    with nlp.select_pipes(enable=["transformer"]):
        docs = list(nlp.pipe(texts, batch_size=args.batch_size))
    heads = [name for name in nlp.pipe_names if name != "transformer"]

    def head_over_docs(name: str) -> Callable[[], None]:
        return lambda: list(nlp.get_pipe(name).pipe(docs, batch_size=args.batch_size))

    times = interleaved({name: head_over_docs(name) for name in heads}, args.rounds, sync)
    fingerprint = hashlib.sha256()
    for doc in docs:
        fingerprint.update(repr([(e.start, e.end, e.label_) for e in doc.ents]).encode())
        fingerprint.update(repr([x["token"] for m in (doc._.fill_mask or []) for x in m]).encode())
        fingerprint.update(repr(sorted((k, round(v, 5)) for k, v in doc.cats.items())).encode())
        fingerprint.update(numpy.round(numpy.asarray(doc._.trf_vector), 5).tobytes())
    median = {name: statistics.median(t) for name, t in times.items()}
    row = {
        "bench": "heads_v1",
        "code": str(code),
        "commit": commit + ("+dirty" if dirty else ""),
        "docs": len(docs),
        "words": sum(len(d) for d in docs),
        "rounds": args.rounds,
        "torch_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(args.gpu_id) if args.gpu_id >= 0 else "cpu",
        "random_weights": args.random_weights,
        "median_seconds": {k: round(v, 4) for k, v in median.items()},
        "heads_total_seconds": round(sum(median.values()), 4),
        "round_seconds": {k: [round(x, 4) for x in v] for k, v in times.items()},
        "annotations_sha256": fingerprint.hexdigest()[:16],
        "entities": sum(len(d.ents) for d in docs),
    }
    print(json.dumps({k: v for k, v in row.items() if k != "round_seconds"}))
    append_jsonl(args.out, row)


if __name__ == "__main__":
    main()
