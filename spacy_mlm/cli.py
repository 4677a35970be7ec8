"""The `spacy-mlm` command line (also `python -m spacy_mlm`)."""

import sys
from typing import Optional

import click

from .errors import SpacyMlmError

# --force help: what a command writes into a non-empty directory without it.
WROTE = "this command wrote (replaces only the files it writes; keeps others)"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spacy-mlm")
def cli() -> None:
    """spacy-mlm: masked-language-model encoders in spaCy."""
    from .compat import warn_on_untested_versions

    warn_on_untested_versions()


@cli.command("fill-mask")
@click.argument("model")
@click.argument("text")
@click.option("--top-k", type=click.IntRange(min=1), default=None, help="Predictions per mask (default: the pipe's top_k).")
def fill_mask_command(model: str, text: str, top_k: Optional[int]) -> None:
    """Print the predictions for each mask token in TEXT.

    MODEL is a spaCy pipeline directory or package with a fill_mask pipe, or an HF
    masked-LM checkpoint directory (or hub name).
    """
    from wasabi import msg

    from .mlm import load_fill_mask_pipeline

    nlp = load_fill_mask_pipeline(model, top_k)
    doc = nlp(text)
    mask = nlp.get_pipe("fill_mask").mask_token
    if not doc._.fill_mask:
        msg.warn(f"No mask token in the text: write {mask} where a word should be predicted.")
        return
    for n, predictions in enumerate(doc._.fill_mask, start=1):
        rows = [(i, p["token_str"], f"{p['score']:.4f}", p["sequence"]) for i, p in enumerate(predictions, 1)]
        msg.table(rows, header=("#", "token", "score", "sequence"), title=f"{mask} #{n}", divider=True)


@cli.command("tokenizer")
@click.argument("corpus", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.argument("output_dir", type=click.Path(file_okay=False))
@click.option("--vocab-size", type=int, required=True, help="Vocabulary size, special tokens included.")
@click.option("--kind", type=click.Choice(["wordpiece", "bpe", "unigram"]), default="wordpiece", show_default=True,
              help="wordpiece: BERT, DistilBERT, ELECTRA; bpe (byte-level): RoBERTa, ModernBERT; unigram "
                   "(SentencePiece-style): XLM-RoBERTa, DeBERTa-v2/v3, ALBERT.")
@click.option("--lowercase", is_flag=True, help="Lowercase text before tokenizing.")
@click.option("--force", is_flag=True, help=f"Write into a non-empty OUTPUT_DIR that is not a tokenizer {WROTE}.")
def tokenizer_command(corpus, output_dir: str, vocab_size: int, kind: str, lowercase: bool, force: bool) -> None:
    """Train a tokenizer on CORPUS files (plain text or JSONL) and save it to OUTPUT_DIR. Runs of
    more than 100 characters without a space (base64, minified code) are left out of training.

    OUTPUT_DIR must be new, empty or an earlier output of this command; never a model's directory.
    """
    from .pretrain.tokenizer import build_tokenizer, iter_corpus_lines, model_in
    from .safe_output import check_output, write_output

    output = check_output(output_dir, corpus, command="spacy-mlm tokenizer", force=force, conflict=model_in)
    tok = build_tokenizer(iter_corpus_lines(corpus), vocab_size=vocab_size, kind=kind, lowercase=lowercase,
                          source=", ".join(corpus))
    write_output(output, lambda tmp: tok.save_pretrained(str(tmp)), "the tokenizer")
    click.echo(f"Saved a {kind} tokenizer ({len(tok)} entries) to {output_dir}")


@cli.command("init-model")
@click.argument("output_dir", type=click.Path(file_okay=False))
@click.option("--tokenizer", "tokenizer_dir", required=True, type=click.Path(), help="Tokenizer directory.")
# The names of spacy_mlm.pretrain.init_model.ARCHS, spelled out: importing it here would load `tokenizers`.
@click.option("--arch", type=click.Choice(["bert", "roberta", "distilbert", "modernbert", "xlm-roberta", "deberta-v2",
                                           "electra", "albert"]), default="bert", show_default=True,
              help="deberta-v2 also builds DeBERTa-v3; electra: its generator (the MLM); albert: shared layers.")
@click.option("--size", type=click.Choice(["tiny", "mini", "small", "base"]), default="tiny", show_default=True)
@click.option("--max-length", type=click.IntRange(min=8), default=512, show_default=True, help="Maximum sequence length.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help=f"Write into a non-empty OUTPUT_DIR that is not a model {WROTE}.")
def init_model_command(output_dir: str, tokenizer_dir: str, arch: str, size: str, max_length: int, seed: int,
                       force: bool) -> None:
    """Write a randomly initialised MLM checkpoint to OUTPUT_DIR, for pretraining from scratch.

    OUTPUT_DIR must be new, empty or an earlier output of this command, and not the tokenizer's directory.
    """
    from .pretrain.init_model import build_model
    from .safe_output import check_output, write_output

    output = check_output(output_dir, [tokenizer_dir], command="spacy-mlm init-model", force=force)
    model, tokenizer = build_model(tokenizer_dir, arch=arch, size=size, max_length=max_length, seed=seed)
    write_output(output, lambda tmp: (model.save_pretrained(str(tmp)), tokenizer.save_pretrained(str(tmp))),
                 "the model")
    n_params = sum(p.numel() for p in model.parameters())
    click.echo(f"Saved a {size} {arch} MLM ({n_params / 1e6:.1f}M parameters) to {output_dir}")


@cli.command(
    "pretrain", context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
)
@click.argument("config_path", type=click.Path(exists=True, dir_okay=False))
@click.argument("output_dir", type=click.Path(file_okay=False))
@click.option("--gpu-id", type=click.IntRange(min=-1), default=None, help="GPU to use (-1: CPU). Default: [system] gpu_id.")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in OUTPUT_DIR.")
@click.option("--force", is_flag=True, help="Start over in an OUTPUT_DIR that holds another run or other files "
                                           "(deletes its checkpoints, final model and metrics; keeps other files).")
@click.pass_context
def pretrain_command(ctx, config_path: str, output_dir: str, gpu_id: Optional[int], resume: bool, force: bool) -> None:
    """Masked-language-model pretraining from a config (write one with `spacy-mlm init-config pretrain`).

    Override any setting with --section.key value, e.g. --paths.train corpus.txt
    --training.max_steps 1000. Runs under `torchrun --nproc_per_node N` unchanged.
    OUTPUT_DIR must not hold the config, corpus or base model; --resume never restarts a run
    that has a final model or damaged checkpoints from step 0 (it says what to do instead).
    """
    from spacy.cli._util import parse_config_overrides

    from .pretrain.loop import pretrain

    args = list(ctx.args)  # parse_config_overrides consumes the list it is given
    try:
        overrides = parse_config_overrides(list(args))
    except SystemExit:
        raise SpacyMlmError(f"Could not parse the overrides {args}: write them as --section.key value.") from None
    final = pretrain(config_path, output_dir, overrides, gpu_id=gpu_id, resume=resume, force=force)
    click.echo(f"Saved the pretrained model to {final}")


@cli.command("score")
@click.argument("model")
@click.argument("corpus", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True, help="Masked copies per forward pass.")
@click.option("--max-docs", type=click.IntRange(min=1), default=None, help="Score only the first N docs.")
@click.option("--gpu-id", type=click.IntRange(min=-1), default=-1, show_default=True, help="GPU to use (-1: CPU).")
def score_command(model: str, corpus, batch_size: int, max_docs: Optional[int], gpu_id: int) -> None:
    """Pseudo-log-likelihood and pseudo-perplexity of CORPUS under MODEL (an HF MLM checkpoint
    or a spaCy pipeline with fill_mask). The last line is `pseudo_perplexity: <float>`."""
    from itertools import chain

    from .mlm_data.corpus import any_corpus
    from .pretrain.score import gpu_device, pseudo_perplexity

    texts = chain.from_iterable(any_corpus(path, max_docs=max_docs)() for path in corpus)
    result = pseudo_perplexity(model, texts, batch_size=batch_size, device=gpu_device(gpu_id), source=", ".join(corpus))
    click.echo(f"texts: {result['texts']}")
    click.echo(f"tokens: {result['tokens']}")
    if result["windowed_texts"]:
        click.echo(f"windowed_texts: {result['windowed_texts']} (longer than {result['max_length']} wordpieces: "
                   "scored window by window)")
    click.echo(f"pseudo_log_likelihood: {result['pseudo_log_likelihood']:.4f}")
    click.echo(f"pseudo_perplexity: {result['pseudo_perplexity']:.6f}")


@cli.command("quantize")
@click.argument("pipeline")
@click.argument("output_dir", type=click.Path(file_okay=False))
@click.option("--dtype", type=click.Choice(["int8", "bf16", "fp16"]), required=True,
              help="int8: CPU; bf16: CPU (fast with AVX512-BF16/AMX) and GPU; fp16: GPU only.")
@click.option("--transformer", default="transformer", show_default=True, help="The transformer component.")
@click.option("--force", is_flag=True, help=f"Write into a non-empty OUTPUT_DIR that is not a pipeline {WROTE}.")
def quantize_command(pipeline: str, output_dir: str, dtype: str, transformer: str, force: bool) -> None:
    """Write a copy of the fp32 PIPELINE whose shared transformer runs in DTYPE to OUTPUT_DIR.

    The copy stores the reduced weights (int8: about a third of the fp32 encoder on disk), loads
    with spacy.load and packages with `spacy package`. It is for inference: train in fp32.
    OUTPUT_DIR must be new, empty or an earlier output of this command, outside PIPELINE's directory.
    """
    import spacy

    from .loading import load_pipeline
    from .precision import quantize_pipeline
    from .safe_output import check_output, write_output

    source = spacy.util.get_package_path(pipeline) if spacy.util.is_package(pipeline) else pipeline
    output = check_output(output_dir, [source], command="spacy-mlm quantize", force=force)
    quantized = quantize_pipeline(load_pipeline(pipeline), dtype, transformer)
    write_output(output, lambda tmp: quantized.to_disk(tmp), "the pipeline")
    click.echo(f"Saved the {dtype} pipeline to {output_dir}")


def _register_commands() -> None:
    # Commands that live beside the code they drive.
    from .convert import convert_command
    from .init_config import init_config_command

    cli.add_command(convert_command)
    cli.add_command(init_config_command)


_register_commands()


def main(args: Optional[list] = None, prog_name: Optional[str] = None) -> None:
    try:
        cli.main(args=args, prog_name=prog_name, standalone_mode=True)
    except SpacyMlmError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
