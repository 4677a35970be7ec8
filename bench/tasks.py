"""WNUT-17 NER and SST-2 sentiment: spacy-mlm vs HF Trainer on the same checkpoint (bench/eval_tasks.py).

`compare` runs both systems once. `protocol` is the fair comparison: (1) tuning, the same budget for both,
each system's grid (HF: lr 2e-5 / 5e-5 / 1e-4; spacy-mlm: head_lr_scale 1 / 10 / 30 at lr 1e-4), seed 0,
trained on the first 90% of the training set and scored on the last 10% (the dev set never chooses);
(2) each system's best setting trained on the full training set with seeds 1-3 and scored on dev, each
run's predictions written under OUT_predictions/ beside --out (not kept in git: a run into a fresh --out
regenerates them) for the paired bootstrap of `summary`; (3) --ablation: spacy-mlm's chosen setting on
three encoders of one architecture: random weights, the pretrained ones, and the pretrained ones after
`spacy-mlm pretrain` on the task's own text without labels. Every run is one row in --out; a rerun skips
the runs already there. `errors` breaks the NER eval runs' errors down.
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import click

from bench.common import REPO, RESULTS, append_row, checkpoint, data_dir, read_rows
from bench.eval_tasks import NER_FILES, TEXTCAT_FILES, load_docs, run_hf, run_spacy

OUT = RESULTS / "tasks.jsonl"
GRIDS = {
    "hf": [{"lr": 2e-5}, {"lr": 5e-5}, {"lr": 1e-4}],
    "spacy": [{"lr": 1e-4, "head_lr_scale": s} for s in (1.0, 10.0, 30.0)],
}
METRIC = {"ner": "ents_f", "textcat": "accuracy"}
PIPE = {"ner": "ner", "textcat": "textcat"}


def load_task(task: str, root: Path, max_train: int = 0, max_dev: int = 0):
    train_file, dev_file = NER_FILES if task == "ner" else TEXTCAT_FILES
    return load_docs(root / train_file, task, max_train), load_docs(root / dev_file, task, max_dev)


suite = click.Group("tasks", help=__doc__)
task_opt = click.option("--task", "tasks", multiple=True, type=click.Choice(["ner", "textcat"]), help="Repeatable; default both.")
data_opt = click.option("--data-dir", "data_dir_", default=None)
base_opt = click.option("--base-model", default=None, help="HF checkpoint (default: all-MiniLM-L6-v2).")
out_opt = click.option("--out", type=Path, default=OUT, show_default=True)


@suite.command()
@data_opt
@base_opt
@task_opt
@click.option("--systems", default="hf,spacy", show_default=True)
@click.option("--epochs", default=2, show_default=True)
@click.option("--lr", default=1e-4, show_default=True)
@click.option("--batch-size", default=16, show_default=True, help="Sentences per optimizer step.")
@click.option("--warmup-ratio", default=0.1, show_default=True)
@click.option("--max-length", default=128, show_default=True)
@click.option("--max-train", default=0, help="First N training docs (0: all).")
@click.option("--max-dev", default=0, help="First N dev docs (0: all).")
@click.option("--mlm-rate", type=float, default=None, help="spacy: add fill_mask with this mlm_rate.")
@click.option("--set", "set_", multiple=True, metavar="KEY=JSON", help="spacy: config override, e.g. components.ner.head_lr_scale=1.")
@click.option("--seed", default="0", show_default=True, help="A seed, or comma-separated seeds: one run (and row) each.")
@click.option("--gpu-id", default=-1)
@click.option("--tag", default="run", show_default=True, help="Name of this run in the output.")
@click.option("--save-dir", default=None, help="spacy: save each trained pipeline under here.")
@out_opt
def compare(data_dir_, base_model, tasks, systems, seed, out, set_, **options) -> None:
    """Both systems once, one after the other in this process, with the same settings."""
    args = argparse.Namespace(base_model=checkpoint(base_model), set=list(set_) or None, **options)
    data = {task: load_task(task, data_dir(data_dir_), args.max_train, args.max_dev) for task in tasks or ("ner", "textcat")}
    for args.seed in (int(s) for s in seed.split(",")):
        keys = ("epochs", "lr", "batch_size", "warmup_ratio", "max_train", "mlm_rate", "seed", "set")
        results: Dict[str, Any] = {"tag": args.tag, "base_model": str(args.base_model),
                                   "args": {k: v for k, v in vars(args).items() if k in keys}}
        for task, (train, dev) in data.items():
            for system in systems.split(","):
                print(f"== {task} / {system}: {len(train)} train, {len(dev)} dev docs, {args.epochs} epochs, seed {args.seed}",
                      file=sys.stderr)
                results[f"{task}/{system}"] = (run_hf if system == "hf" else run_spacy)(task, train, dev, args)
                print(f"   {json.dumps(results[f'{task}/{system}'])}", file=sys.stderr)
        click.echo(json.dumps(append_row(out, results, args.gpu_id), indent=2))


# -- the protocol ----------------------------------------------------------------------------------


def run_key(row: Dict[str, Any]) -> str:
    keys = ("task", "system", "phase", "setting", "seed", "epochs", "batch_size", "max_train", "max_dev")
    # Rows without "encoder" predate the ablation: they fine-tune the pretrained base model.
    return json.dumps([row.get(k) for k in keys] + [row.get("encoder", "pretrained")], sort_keys=True)


def protocol_rows(path: Path) -> List[Dict[str, Any]]:
    """The protocol's runs in a results file (the other rows of the suite have no "phase")."""
    return [r for r in read_rows(path) if "phase" in r]


def record(task: str, system: str, phase: str, setting: Dict[str, float], seed: int, fit, score,
           args: argparse.Namespace, encoder: str = "pretrained", base_model: Optional[Path] = None) -> Dict[str, Any]:
    """Run one training + scoring unless --out already holds it; append its row. Returns the row."""
    row = {"task": task, "system": system, "phase": phase, "setting": setting, "seed": seed,
           "epochs": args.epochs, "batch_size": args.batch_size, "base_model": str(base_model or args.base_model),
           "max_train": args.max_train, "max_dev": args.max_dev}
    if encoder != "pretrained":
        row["encoder"] = encoder
    done = [r for r in protocol_rows(args.out) if run_key(r) == run_key(row)]
    if done:
        return done[0]
    print(f"== {task} {system} {encoder} {phase} {setting} seed {seed}", file=sys.stderr, flush=True)
    # The predictions on the scored split, one JSON line per doc, for paired comparisons.
    parts = [task, system] + ([encoder] if encoder != "pretrained" else []) + [phase]
    name = "-".join([*parts, *(f"{k}{v:g}" if isinstance(v, (int, float)) else f"{k}-{v}" for k, v in sorted(setting.items())),
                     f"seed{seed}"])
    if args.max_train or args.max_dev:
        name += f"-smoke{args.max_train}x{args.max_dev}"
    predictions = args.out.parent / f"{args.out.stem}_predictions" / f"{name}.jsonl"
    row["predictions"] = str(predictions.relative_to(args.out.parent))
    overrides = [f"components.{PIPE[task]}.head_lr_scale={setting['head_lr_scale']}"] if "head_lr_scale" in setting else []
    if setting.get("pooling") == "first":  # a probe: the tagger reads each word's first wordpiece, as HF's recipe does
        overrides.append(f'components.{PIPE[task]}.model.tok2vec.pooling={{"@layers":"spacy_mlm.reduce_first.v1"}}')
    run_args = argparse.Namespace(
        base_model=base_model or args.base_model, epochs=args.epochs, lr=setting["lr"], batch_size=args.batch_size,
        warmup_ratio=0.1, max_length=128, mlm_rate=None, set=overrides, seed=seed, gpu_id=args.gpu_id,
        save_dir=None, tag="protocol", predictions=predictions)
    row["result"] = (run_hf if system == "hf" else run_spacy)(task, fit, score, run_args)
    return append_row(args.out, row, args.gpu_id)


def grid_tune_rows(rows: List[Dict[str, Any]], task: str, system: str) -> List[Dict[str, Any]]:
    """The tuning runs that choose a system's setting: its grid, seed 0, the pretrained encoder
    (probes' other seeds and settings and the ablation's encoders never choose)."""
    return [r for r in rows if r["task"] == task and r["system"] == system and r["phase"] == "tune"
            and r["seed"] == 0 and r["setting"] in GRIDS[system] and "encoder" not in r]


def sweep(task: str, args: argparse.Namespace) -> None:
    train, dev = load_task(task, data_dir(args.data_dir), args.max_train, args.max_dev)
    cut = len(train) * 9 // 10
    for system in args.systems.split(","):
        tuned = [record(task, system, "tune", s, 0, train[:cut], train[cut:], args) for s in GRIDS[system]]
        best = max(tuned, key=lambda r: r["result"][METRIC[task]])["setting"]
        for seed in args.seeds:
            record(task, system, "eval", best, seed, train, dev, args)


def probe(task: str, args: argparse.Namespace) -> None:
    """Candidate settings (--probe) on the tune split, several seeds: evidence for a fix that never
    touches dev. Compare with the same seeds of the chosen setting (probe it too)."""
    train, _ = load_task(task, data_dir(args.data_dir), args.max_train, args.max_dev)
    cut = len(train) * 9 // 10
    for setting in args.probe:
        # Floats as the grids hold them: {"head_lr_scale": 30} is the same run as the grid's 30.0.
        setting = {k: float(v) if isinstance(v, (int, float)) else v for k, v in setting.items()}
        for seed in (int(s) for s in args.probe_seeds.split(",")):
            record(task, args.systems, "tune", setting, seed, train[:cut], train[cut:], args)


def random_init_encoder(base_model: Path, out_dir: Path) -> Path:
    """(a) The base model's config and tokenizer with freshly drawn weights (seed 0), written by the
    project's prepare_base.py (the one place that builds it)."""
    if not (out_dir / "config.json").is_file():
        script = REPO / "project" / "scripts" / "prepare_base.py"
        subprocess.run([sys.executable, str(script), str(base_model), str(out_dir), "--random-init"], check=True)
    return out_dir


def adapted_encoder(task: str, base_model: Path, train, dev, out_dir: Path, args: argparse.Namespace) -> Path:
    """(c) The base model after `spacy-mlm pretrain` (configs/pretrain.cfg, a fresh MLM head) on the task's
    training text without its labels; the dev text only reports held-out MLM loss."""
    final = out_dir / "final"
    if (final / "config.json").is_file():
        return final
    raw = out_dir.parent / f"{out_dir.name}-text"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "train.txt").write_text("\n".join(doc.text for doc in train) + "\n", encoding="utf8")
    (raw / "dev.txt").write_text("\n".join(doc.text for doc in dev) + "\n", encoding="utf8")
    command = [
        sys.executable, "-m", "spacy_mlm", "pretrain", str(REPO / "configs" / "pretrain.cfg"), str(out_dir), "--force",
        "--gpu-id", str(args.gpu_id), "--paths.train", str(raw / "train.txt"), "--paths.dev", str(raw / "dev.txt"),
        "--paths.base_model", str(base_model), "--training.max_steps", str(args.adapt_steps),
        "--training.seq_length", "64", "--training.batch_tokens", "1024", "--training.learning_rate", "0.0005",
        "--training.warmup_steps", str(max(1, args.adapt_steps // 10)), "--training.eval_frequency", "100",
        "--training.checkpoint_frequency", "0",
    ]
    print("== " + " ".join(command), file=sys.stderr, flush=True)
    subprocess.run(command, check=True)
    append_row(args.out, {"kind": "adaptation", "task": task, "encoder": out_dir.name,
                          "metrics": read_rows(out_dir / "metrics.jsonl")}, args.gpu_id)
    return final


def ablation(task: str, args: argparse.Namespace) -> None:
    rows = [r for r in grid_tune_rows(protocol_rows(args.out), task, "spacy")
            if r["max_train"] == args.max_train and r["max_dev"] == args.max_dev]
    if len(rows) < len(GRIDS["spacy"]):
        raise click.ClickException(f"{args.out}: the ablation uses the setting the protocol chose for spacy-mlm on {task}; "
                                   f"run `python -m bench tasks protocol --task {task} --systems spacy` first")
    best = max(rows, key=lambda r: r["result"][METRIC[task]])["setting"]
    train, dev = load_task(task, data_dir(args.data_dir), args.max_train, args.max_dev)
    models = args.models_dir / (f"smoke{args.max_train}x{args.max_dev}" if args.max_train or args.max_dev else "full")
    base = Path(args.base_model)
    encoders = {
        "random-init": lambda: random_init_encoder(base, models / "random-init"),
        "pretrained": lambda: base,
        "adapted": lambda: adapted_encoder(task, base, train, dev, models / f"{task}-adapted-{args.adapt_steps}", args),
    }
    for encoder in args.encoders.split(","):
        path = encoders[encoder]()
        tag = encoder if encoder != "adapted" else f"adapted-{args.adapt_steps}"
        for seed in args.seeds:
            record(task, "spacy", "eval", best, seed, train, dev, args, encoder=tag, base_model=path)


@suite.command()
@task_opt
@click.option("--systems", default="hf,spacy", show_default=True)
@base_opt
@data_opt
@click.option("--epochs", default=3, show_default=True)
@click.option("--batch-size", default=16, show_default=True)
@click.option("--gpu-id", default=-1)
@click.option("--seeds", default="1,2,3", show_default=True, help="Evaluation seeds to run (e.g. one per process).")
@click.option("--max-train", default=0, help="First N training docs (0: all; smoke runs only).")
@click.option("--max-dev", default=0, help="First N dev docs (0: all; smoke runs only).")
@out_opt
@click.option("--probe", multiple=True, type=json.loads, metavar="JSON",
              help='A candidate setting scored on the tune split only, e.g. \'{"lr": 1e-4, "head_lr_scale": 30, "pooling": "first"}\'.')
@click.option("--probe-seeds", default="0,1,2", show_default=True, help="Seeds of the --probe runs.")
@click.option("--ablation", "is_ablation", is_flag=True, help="The encoder ablation: spacy-mlm's chosen setting on three encoders.")
@click.option("--encoders", default="random-init,pretrained,adapted", show_default=True, help="Ablation rows to run.")
@click.option("--adapt-steps", default=300, show_default=True, help="MLM steps (1,024 tokens each) of the adapted row.")
@click.option("--models-dir", type=Path, default=REPO / "bench" / ".models", help="The ablation's encoders.")
def protocol(tasks, data_dir_, is_ablation, **options) -> None:
    """The fair comparison: tuning on the tune split, then seeds on dev (or --probe, or --ablation)."""
    args = argparse.Namespace(data_dir=data_dir_, **options)
    args.seeds = [int(seed) for seed in args.seeds.split(",")]
    if args.probe and args.systems not in GRIDS:
        raise click.UsageError("--probe runs one system: give --systems spacy or --systems hf")
    args.base_model = checkpoint(args.base_model)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for task in tasks or ("ner", "textcat"):
        if args.probe:
            probe(task, args)
        else:
            (ablation if is_ablation else sweep)(task, args)
    click.echo(summary_text(args.out, data_dir(args.data_dir)))


# -- the tables ------------------------------------------------------------------------------------


@suite.command()
@click.argument("results", type=Path, default=OUT)
@data_opt
def summary(results, data_dir_) -> None:
    """The protocol's tables from RESULTS, with the paired bootstrap where the runs' predictions are there."""
    click.echo(summary_text(results, data_dir(data_dir_)))


def summary_text(path: Path, data: Optional[Path] = None) -> str:
    every = [r for r in protocol_rows(path) if not r.get("max_train") and not r.get("max_dev")]  # full runs only
    rows = [r for r in every if "encoder" not in r]
    lines = ["| task | system | tuning (tune split, seed 0) | chosen | dev, seeds 1-3: mean ± std | range |", "|---|---|---|---|---|---|"]
    for task in ("ner", "textcat"):
        for system in ("hf", "spacy"):
            tune = grid_tune_rows(rows, task, system)
            ev = [r for r in rows if r["task"] == task and r["system"] == system and r["phase"] == "eval"]
            if not tune:
                continue
            metric = METRIC[task]
            grid = ", ".join(f"{_setting(r['setting'])}: {r['result'][metric]:.4f}" for r in tune)
            scores = [r["result"][metric] for r in ev]
            stat = f"{statistics.mean(scores):.4f} ± {statistics.stdev(scores):.4f} (n={len(scores)})" if len(scores) > 1 else (
                f"{scores[0]:.4f} (n=1)" if scores else "not run yet")
            span = f"{min(scores):.4f}-{max(scores):.4f}" if scores else "-"
            lines.append(f"| {task} | {system} | {grid} | {_setting(ev[0]['setting']) if ev else '-'} | {stat} | {span} |")
    for task in ("ner", "textcat"):
        ev = {system: [r for r in rows if r["task"] == task and r["system"] == system and r["phase"] == "eval" and "predictions" in r]
              for system in ("hf", "spacy")}
        if not (len(ev["hf"]) == len(ev["spacy"]) == 3 and data is not None):
            continue
        missing = [r["predictions"] for r in ev["hf"] + ev["spacy"] if not (path.parent / r["predictions"]).is_file()]
        if missing:
            lines.append(f"\n{task}: no paired bootstrap: {len(missing)} runs' predictions are not under {path.parent} "
                         "(not kept in git; a protocol run into a fresh --out regenerates them)")
            continue
        gold = load_docs(data / (NER_FILES if task == "ner" else TEXTCAT_FILES)[1], task)
        hf, spacy = (doc_counts(task, ev[s], gold, path.parent) for s in ("hf", "spacy"))
        b = paired_bootstrap(task, hf, spacy)
        lines.append(f"\n{task}: spacy-mlm - HF = {b['diff']:+.4f} (mean over seeds; paired bootstrap over the "
                     f"{len(gold)} dev docs, 2,000 resamples: 95% interval {b['low']:+.4f} to {b['high']:+.4f}, "
                     f"spacy-mlm ahead in {b['p_better']:.0%} of resamples)")
    lines += ["", ablation_table(every), "", probe_table(rows)]
    return "\n".join(lines)


def probe_table(rows: List[Dict[str, Any]]) -> str:
    """Tune-split scores per setting over every seed run there (the probes of a candidate fix)."""
    lines = ["| task | system | setting (tune split) | mean ± std | seeds |", "|---|---|---|---|---|"]
    for task in ("ner", "textcat"):
        tune = [r for r in rows if r["task"] == task and r["phase"] == "tune"]
        settings = {(r["system"], json.dumps(r["setting"], sort_keys=True)) for r in tune if r["seed"] != 0}
        for system, setting in sorted(settings):
            runs = sorted((r for r in tune if r["system"] == system and json.dumps(r["setting"], sort_keys=True) == setting),
                          key=lambda r: r["seed"])
            scores = [r["result"][METRIC[task]] for r in runs]
            lines.append(f"| {task} | {system} | {_setting(runs[0]['setting'])} | {_mean_std(scores)} | "
                         f"{','.join(str(r['seed']) for r in runs)} |")
    return "\n".join(lines)


def ablation_table(rows: List[Dict[str, Any]]) -> str:
    """spacy-mlm's dev scores per encoder (the ablation's rows and the protocol's pretrained rows)."""
    lines = ["| task | encoder | setting | dev, mean ± std | range | seeds |", "|---|---|---|---|---|---|"]
    for task in ("ner", "textcat"):
        ev = [r for r in rows if r["task"] == task and r["system"] == "spacy" and r["phase"] == "eval"]
        for encoder in sorted({r.get("encoder", "pretrained") for r in ev}, key=lambda e: (e != "random-init", e != "pretrained", e)):
            runs = sorted((r for r in ev if r.get("encoder", "pretrained") == encoder), key=lambda r: r["seed"])
            scores = [r["result"][METRIC[task]] for r in runs]
            lines.append(f"| {task} | {encoder} | {_setting(runs[0]['setting'])} | {_mean_std(scores)} | "
                         f"{min(scores):.4f}-{max(scores):.4f} | {','.join(str(r['seed']) for r in runs)} |")
    return "\n".join(lines)


def read_predictions(row: Dict[str, Any], root: Path, n_docs: int) -> List[Dict[str, Any]]:
    """The predictions a run saved, one dict per scored doc (checked against the gold count)."""
    lines = (root / row["predictions"]).read_text(encoding="utf8").splitlines()
    if len(lines) != n_docs:
        raise click.ClickException(f"{row['predictions']}: {len(lines)} predictions for {n_docs} gold docs")
    return [json.loads(line) for line in lines]


def doc_counts(task: str, rows: List[Dict[str, Any]], gold: Sequence[Any], root: Path):
    """Per dev doc and seed: NER (tp, fp, fn) of exact spans, or textcat (correct, 0, 0). Shape (seeds, docs, 3)."""
    import numpy as np

    counts = np.zeros((len(rows), len(gold), 3))
    for i, row in enumerate(rows):
        for j, (pred, ref) in enumerate(zip(read_predictions(row, root, len(gold)), gold)):
            if task == "ner":
                p, g = {tuple(e) for e in pred["ents"]}, {(e.start, e.end, e.label_) for e in ref.ents}
                counts[i, j] = (len(p & g), len(p - g), len(g - p))
            else:
                counts[i, j, 0] = max(pred["cats"], key=pred["cats"].get) == max(ref.cats, key=ref.cats.get)
    return counts


def metric_of(task: str, summed):
    """F1 from summed (tp, fp, fn), or accuracy from summed correct / n, along the last axis."""
    import numpy as np

    if task == "ner":
        tp, fp, fn = summed[..., 0], summed[..., 1], summed[..., 2]
        return np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    return summed[..., 0]


def paired_bootstrap(task: str, hf, spacy, n: int = 2000, seed: int = 0) -> Dict[str, float]:
    """Resample dev docs (the same resample for both systems); each side's score is its mean over seeds.
    Returns the observed difference (spacy - hf), its 95% interval and P(difference > 0)."""
    import numpy as np

    n_docs = hf.shape[1]
    rng = np.random.default_rng(seed)
    scale = 1.0 if task == "ner" else 1.0 / n_docs

    def score(counts, idx):
        return (metric_of(task, counts[:, idx].sum(axis=1)) * scale).mean(axis=0)

    everything = np.arange(n_docs)
    observed = float(score(spacy, everything) - score(hf, everything))
    idx = rng.integers(0, n_docs, size=(n_docs, n))  # docs x resamples
    diffs = np.array([score(spacy, idx[:, k]) - score(hf, idx[:, k]) for k in range(n)])
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {"diff": observed, "low": float(low), "high": float(high), "p_better": float((diffs > 0).mean())}


def _mean_std(scores: List[float]) -> str:
    return f"{statistics.mean(scores):.4f} ± {statistics.stdev(scores):.4f}" if len(scores) > 1 else f"{scores[0]:.4f}"


def _setting(setting: Dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in setting.items())


COMMANDS = (suite,)
