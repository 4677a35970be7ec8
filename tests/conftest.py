"""Tiny random checkpoints built on the fly: no hub, no weights in git."""

import os
import random

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORDS = (
    "the capital of france is paris a city in europe with many people and old buildings "
    "london berlin madrid rome river bridge museum park street market train station north "
    "south east west small large new famous beautiful quiet busy"
).split()

# Which tokenizer each architecture is trained with.
ARCH_TOKENIZER = {"bert": "wordpiece", "distilbert": "wordpiece", "modernbert": "wordpiece", "roberta": "bpe"}


def corpus(n: int = 400, seed: int = 0):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 15))) for _ in range(n)]


@pytest.fixture(scope="session")
def tokenizer_dirs(tmp_path_factory):
    from spacy_mlm.pretrain.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("tokenizers")
    dirs = {}
    for kind in ("wordpiece", "bpe"):
        train_tokenizer(corpus(), root / kind, vocab_size=300, kind=kind)
        dirs[kind] = root / kind
    return dirs


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory, tokenizer_dirs):
    """arch -> tiny MLM checkpoint dir. A wide init range makes predictions peaked, so
    top-k orders are not decided by float noise."""
    from spacy_mlm.pretrain.init_model import init_model

    root = tmp_path_factory.mktemp("checkpoints")
    out = {}
    for arch, kind in ARCH_TOKENIZER.items():
        init_model(root / arch, tokenizer_dirs[kind], arch=arch, size="tiny", initializer_range=0.2)
        out[arch] = root / arch
    return out


@pytest.fixture(scope="session")
def bert_checkpoint(checkpoints):
    return checkpoints["bert"]


def make_nlp(checkpoint, *pipes, transformer_config=None):
    import spacy

    nlp = spacy.blank("en")
    config = {"model": {"name": str(checkpoint)}}
    if transformer_config:
        config["model"].update(transformer_config)
    nlp.add_pipe("transformer", config=config)
    for pipe in pipes:
        if isinstance(pipe, tuple):
            nlp.add_pipe(pipe[0], config=pipe[1])
        else:
            nlp.add_pipe(pipe)
    nlp.initialize()
    return nlp
