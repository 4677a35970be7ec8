"""Suites that run other commands: a spaCy project workflow timed step by step (`workflow`), and the checks
for a lent GPU machine (`gpu`), each a few other suites under a time limit."""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from bench.common import REPO, RESULTS, append_row


@click.command("workflow", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("name")
@click.argument("overrides", nargs=-1, type=click.UNPROCESSED)
@click.option("--project", type=Path, default=REPO / "project", show_default=True)
@click.option("--out", type=Path, default=RESULTS / "workflow.jsonl", show_default=True)
def workflow(name, overrides, project, out) -> None:
    """Run the project workflow NAME step by step (forced), timing each step; keep its metrics.

    Each step runs as `python -m spacy project run STEP PROJECT --force [OVERRIDES]` (e.g. --vars.NAME VALUE),
    so the total is the workflow's wall time from scratch (downloads aside). The JSON files under the
    project's metrics/NAME folder (metrics/ for `all`) go into the row.
    """
    import srsly

    steps = srsly.read_yaml(project / "project.yml")["workflows"][name]
    seconds = {}
    for step in steps:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "spacy", "project", "run", step, str(project), "--force", *overrides], check=True)
        seconds[step] = round(time.perf_counter() - start, 1)
        click.echo(f"[workflow] {step}: {seconds[step]} s", err=True)
    metrics_dir = project / "metrics" / ("" if name == "all" else name)
    row = append_row(out, {"workflow": name, "overrides": list(overrides), "cpu_count": os.cpu_count(), "seconds": seconds,
                           "total_s": round(sum(seconds.values()), 1),
                           "metrics": {path.stem: srsly.read_json(path) for path in sorted(metrics_dir.glob("*.json"))}})
    click.echo({k: v for k, v in row.items() if k != "metrics"})


gpu = click.Group("gpu", help="""The checks for a GPU machine lent for a few minutes: each step is another suite
in its own process under a time limit (a hung one does not take the others' time), its rows in OUT/STEP.jsonl
and its output in OUT/STEP.log; --smoke runs each on a few examples (about a minute) first.""")
gpu_opt = click.option("--gpu-id", default=0, show_default=True)
smoke_opt = click.option("--smoke", is_flag=True, help="A few examples or steps of each check.")


def run_steps(out: Path, steps) -> None:
    """Each (name, seconds, suite arguments) as `python -m bench ... --out OUT/name.jsonl`, one after another."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm", "--format=csv"],
                             capture_output=True, text=True).stdout
    except FileNotFoundError:
        smi = "no nvidia-smi\n"
    (out / "env.log").write_text(smi, encoding="utf8")
    click.echo(smi)
    for name, limit, argv in steps:
        log = out / f"{name}.log"
        with log.open("w", encoding="utf8") as f:
            try:
                rc = subprocess.run([sys.executable, "-m", "bench", *argv, "--out", str(out / f"{name}.jsonl")], cwd=REPO,
                                    env=env, stdout=f, stderr=subprocess.STDOUT, timeout=limit).returncode
            except subprocess.TimeoutExpired:
                rc = f"timeout after {limit} s"
        click.echo(f"{name} rc {rc}\n" + "\n".join(log.read_text(encoding="utf8").splitlines()[-2:]))


@gpu.command()
@click.argument("pipeline", type=Path)
@click.argument("out", type=Path)
@gpu_opt
@smoke_opt
def checks(pipeline, out, gpu_id, smoke) -> None:
    """Reduced-precision quality on the GPU (precision quality: fp32, bf16, fp16), five-pipe throughput vs the
    four HF pipelines on the GPU (pipes throughput), BERT-base bf16 pretraining tokens/s and MFU (pretrain
    speed). PIPELINE: the trained five-pipe pipeline (BENCHMARKS.md, "Reduced precision"); its transformer
    is also exported as the HF checkpoint both sides of `pipes throughput` and the tokenizer of `pretrain` start from."""
    import spacy

    ckpt = Path(tempfile.mkdtemp()) / "ckpt"
    trf = spacy.load(pipeline).get_pipe("transformer").model
    trf.transformer.save_pretrained(ckpt)
    trf.tokenizer.save_pretrained(ckpt)
    gpu = ["--gpu-id", str(gpu_id)]
    if smoke:
        q, p, t, limits = ["--limit", "20", "--dtypes", "fp32,fp16"], ["--n-docs", "40", "--rounds", "1", "--dtypes", "fp32,fp16"], [
            "--steps", "2", "--skip-steps", "1", "--rounds", "1", "--batch", "8", "--seq-lengths", "128"], (120, 120, 120)
    else:
        q, p, t, limits = ["--dtypes", "fp32,bf16,fp16"], ["--n-docs", "1000", "--rounds", "5", "--dtypes", "fp32,bf16,fp16"], [
            "--steps", "20", "--skip-steps", "3", "--rounds", "2", "--batch", "64", "--seq-lengths", "128,512"], (150, 200, 200)
    run_steps(out, [("quality", limits[0], ["precision", "quality", str(pipeline), *gpu, *q]),
                    ("pipes", limits[1], ["pipes", "throughput", *gpu, "--checkpoint", str(ckpt), *p]),
                    ("pretrain", limits[2], ["pretrain", "speed", *gpu, "--size", "base", "--base-model", str(ckpt), *t])])


@gpu.command()
@click.argument("base", type=Path)
@click.argument("out", type=Path)
@gpu_opt
@smoke_opt
def throughput(base, out, gpu_id, smoke) -> None:
    """The reduced-precision speed rows, no trained pipeline needed (speed does not depend on the weights):
    the host CPU at 2 torch threads, five-pipe pipeline and raw encoder in fp32, int8, bf16 (the CPU goals
    assume AVX512-VNNI/BF16 and AMX, which the GPU machines' Xeons have); then the GPU: five pipes vs the four
    HF pipelines, fp32/bf16/fp16. BASE: an HF checkpoint folder whose config and tokenizer are enough
    (--random-weights: seeded random weights of its shape)."""
    cpu_docs, gpu_docs, rounds, limit = ("40", "40", "1", 150) if smoke else ("400", "1000", "5", 260)
    common = ["--checkpoint", str(base), "--random-weights", "--rounds", rounds]
    run_steps(out, [("cpu_precision", limit, ["pipes", "throughput", "--precision-only", "--threads", "2", "--dtypes",
                                              "fp32,int8,bf16", "--n-docs", cpu_docs, *common]),
                    ("gpu_pipes", limit, ["pipes", "throughput", "--gpu-id", str(gpu_id), "--dtypes", "fp32,bf16,fp16",
                                          "--n-docs", gpu_docs, *common])])


COMMANDS = (workflow, gpu)
