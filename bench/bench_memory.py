"""Resident memory of nlp.pipe over many docs: is it flat?

    python bench/bench_memory.py [--n 100000] [--checkpoint DIR] [--pipes fill_mask,trf_similarity]
                                 [--batch-size 64] [--out bench/results/bench_memory.json]

Runs transformer + the spacy-mlm pipes (default: fill_mask, trf_ner, trf_textcat, trf_similarity)
over N short docs (every third one with a mask token), keeping no doc, and reports VmRSS after
10% of the docs (10k of the default 100k) and after all of them, with the growth in %
(goal: < 5%), plus a trajectory at every tenth. The docs draw their words from a fixed list, so
spaCy's vocab (which grows with every new string, by design) stays bounded and does not hide a
leak in the pipes. Without --checkpoint a tiny random BERT is built in a temp dir (as the tests do).
"""

import argparse
import gc
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence

WORDS = (
    "the capital of france is paris a city in europe with many people and old buildings "
    "london berlin madrid rome river bridge museum park street market train station north "
    "south east west small large new famous beautiful quiet busy"
).split()
ALL_PIPES = ("fill_mask", "trf_ner", "trf_textcat", "trf_similarity")


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def texts(n: int, mask: str, seed: int = 0) -> Iterator[str]:
    rng = random.Random(seed)
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 20))]
        if i % 3 == 0:
            words[rng.randrange(len(words))] = mask
        yield " ".join(words)


def tiny_checkpoint(root: Path) -> Path:
    from spacy_mlm.pretrain.init_model import init_model
    from spacy_mlm.pretrain.tokenizer import train_tokenizer

    rng = random.Random(0)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 15))) for _ in range(400)]
    train_tokenizer(corpus, root / "tokenizer", vocab_size=300, kind="wordpiece")
    init_model(root / "bert", root / "tokenizer", arch="bert", size="tiny", initializer_range=0.2)
    return root / "bert"


def build_nlp(checkpoint: str, pipes: Sequence[str]):
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


def measure(
    checkpoint: Optional[str], n: int = 100_000, checkpoints: Optional[Sequence[int]] = None,
    pipes: Sequence[str] = ALL_PIPES, batch_size: int = 64,
) -> Dict:
    """RSS (MB) after each count in `checkpoints` (default: n//10 and n) and every tenth of n."""
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = checkpoint or str(tiny_checkpoint(Path(tmp)))
        nlp = build_nlp(checkpoint, pipes)
        mask = nlp.get_pipe("fill_mask").mask_token if "fill_mask" in pipes else "[MASK]"
        marks = sorted(set(checkpoints or (max(1, n // 10), n)) | {max(1, n * k // 10) for k in range(1, 11)})
        rss, n_masks, start = {}, 0, time.perf_counter()
        for i, doc in enumerate(nlp.pipe(texts(n, mask), batch_size=batch_size), 1):
            n_masks += len(doc._.fill_mask or []) if doc.has_extension("fill_mask") else 0
            if i in marks:
                gc.collect()
                rss[i] = round(rss_mb(), 1)
                print(f"{i:>8} docs  RSS {rss[i]:8.1f} MB  {time.perf_counter() - start:7.1f}s", file=sys.stderr)
        first, last = (checkpoints or (max(1, n // 10), n))[0], (checkpoints or (n,))[-1]
        return {
            "n_docs": n, "pipes": list(pipes), "batch_size": batch_size, "checkpoint": checkpoint,
            "masks_filled": n_masks, "rss_mb": rss, "rss_first_mb": rss[first], "rss_last_mb": rss[last],
            "first_at": first, "last_at": last,
            "growth_pct": round(100.0 * (rss[last] - rss[first]) / rss[first], 2),
            "seconds": round(time.perf_counter() - start, 1),
            "vocab_strings": len(nlp.vocab.strings),
            "fill_mask_token_cache": len(nlp.get_pipe("fill_mask")._token_str_cache) if "fill_mask" in pipes else 0,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="number of docs (default 100,000)")
    parser.add_argument("--checkpoint", default=None, help="HF MLM checkpoint (default: tiny random BERT)")
    parser.add_argument("--pipes", default=",".join(ALL_PIPES))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    args = parser.parse_args()
    result = measure(args.checkpoint, args.n, pipes=[p for p in args.pipes.split(",") if p], batch_size=args.batch_size)
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf8")


if __name__ == "__main__":
    main()
