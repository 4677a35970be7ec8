"""Tiny tokenizers/checkpoints and corpora for the pretraining tests, built on the fly."""

import os
import random
from pathlib import Path
from typing import List

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORDS = (
    "the capital of france is paris a city in europe with many people and old buildings "
    "london berlin madrid rome river bridge museum park street market train station north "
    "south east west small large new famous beautiful quiet busy unbelievably extraordinary"
).split()
CONFIG = Path(__file__).parent.parent / "configs" / "pretrain.cfg"
# Small and fast: 8 sequences of 32 tokens per step. fp32 pinned: `precision = "auto"` picks bf16 on
# CPUs with AVX512-BF16 or AMX and fp32 elsewhere, and tests of exact maths must not depend on the CPU.
SMALL = {"training.seq_length": 32, "training.batch_tokens": 256, "training.warmup_steps": 2,
         "training.eval_sequences": 16, "logging.progress_bar": False, "corpus.shuffle_buffer": 16,
         "training.precision": "fp32"}
# Equivalence tests run in both precisions on every CPU (bf16 is emulated, slowly but exactly, where
# the CPU lacks it). bf16 autocast rounds matmul inputs to 8 mantissa bits, so two computations that
# are equal in exact maths but cut into different batch shapes agree to about 1e-3, not 1e-5.
PRECISIONS = ("fp32", "bf16")


def sentences(n: int, seed: int = 0, lo: int = 5, hi: int = 25) -> List[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))) for _ in range(n)]


def write_lines(path: Path, lines: List[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    return path


@pytest.fixture(scope="session")
def pt_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pretrain")


@pytest.fixture(scope="session")
def pt_corpus(pt_root):
    train = write_lines(pt_root / "train.txt", sentences(300, seed=1))
    dev = write_lines(pt_root / "dev.txt", sentences(30, seed=2))
    return train, dev


@pytest.fixture(scope="session")
def pt_tokenizers(pt_root, pt_corpus):
    from spacy_mlm.pretrain.tokenizer import train_tokenizer

    text = pt_corpus[0].read_text().splitlines()
    return {kind: train_tokenizer(text, pt_root / f"tok_{kind}", vocab_size=120, kind=kind) and pt_root / f"tok_{kind}"
            for kind in ("wordpiece", "bpe")}


@pytest.fixture(scope="session")
def pt_model(pt_root, pt_tokenizers) -> Path:
    """A tiny BERT MLM (dropout kept: resume must restore the dropout RNG too)."""
    from spacy_mlm.pretrain.init_model import init_model

    init_model(pt_root / "bert", pt_tokenizers["wordpiece"], arch="bert", size="tiny", max_length=64)
    return pt_root / "bert"


@pytest.fixture(scope="session")
def pt_pipeline(pt_root, pt_model) -> Path:
    """A tiny fp32 spaCy pipeline (transformer + fill_mask) on pt_model, on disk."""
    from .conftest import make_nlp

    make_nlp(pt_model, "fill_mask").to_disk(pt_root / "pipeline")
    return pt_root / "pipeline"


def stopped_run(out: Path, opts: dict, after_step: int) -> Path:
    """A run interrupted after `after_step` (as a kill would leave it), for --resume tests."""
    from spacy_mlm.pretrain.loop import pretrain

    def stop(step, _):
        if step == after_step:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(CONFIG, out, opts, on_step=stop)
    return out


def overrides(train, dev, model, **extra) -> dict:
    out = {"paths.train": str(train), "paths.dev": str(dev) if dev else None, "paths.base_model": str(model), **SMALL}
    out.update({k.replace("__", "."): v for k, v in extra.items()})
    return out


@pytest.fixture
def restore_torch_threads():
    """In-process runs use [system] threads = 1 (steady on a shared 2-core machine); restore after."""
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)
