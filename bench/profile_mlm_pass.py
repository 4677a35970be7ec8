"""Where fill_mask's extra MLM pass spends its time in joint training: per step, the
NER-only `nlp.update` against fill_mask's own pass (batch building, encoder forward + head + loss,
backward) on the same WNUT-17 batch, and a torch.profiler table of one MLM backward.

    python bench/profile_mlm_pass.py --base-model models/minilm-wiki/final [--share 0.125] [--steps 12]

Same pipeline as bench/bench_joint.py (configs/ner.cfg + fill_mask, mlm_rate 0.15). The MLM pass is
run by hand as FillMask.update runs it (masked_batch, encoder in train mode, head on the masked
positions, cross-entropy, backward) so each part can be timed; its gradients are dropped (the
transformer's optimizer step is timed with NER-only, where it runs once per step in both cases).
Run it alone: the times are only meaningful on a quiet machine. One JSON line per run to --out.
It times one MLM pass as one encoder call per step: fill_mask's `mlm_every` (one pass every k steps)
and its length groups (several calls per pass on CPU) are not modelled; bench_joint.py times those.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from bench_joint import build_pipeline
from common import append_jsonl, data_dir
from eval_tasks import NER_FILES, REPO, gold_tokens_doc, load_docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--base-model", required=True, help="HF checkpoint with an MLM head")
    parser.add_argument("--share", type=float, default=0.125, help="fill_mask mlm_share")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "mlm_pass_profile.jsonl")
    args = parser.parse_args()
    from spacy.training import Example
    from torch.profiler import ProfilerActivity, profile

    docs = load_docs(data_dir(args.data_dir) / NER_FILES[0], "ner", args.steps * args.batch_size)
    nlp = build_pipeline(str(args.base_model), docs, 0)
    optimizer = nlp.create_optimizer()
    fill_mask = nlp.get_pipe("fill_mask")
    fill_mask.mlm_share = args.share
    encoder, head = fill_mask.upstream_model.transformer, fill_mask.tied_head()
    examples = [Example(gold_tokens_doc(nlp.vocab, ref), ref) for ref in docs]
    rows, table = [], ""
    for step in range(args.steps):
        batch_examples = examples[step * args.batch_size : (step + 1) * args.batch_size]
        t0 = time.perf_counter()
        nlp.update(batch_examples, sgd=optimizer, drop=0.1, losses={}, exclude=["fill_mask"])
        t1 = time.perf_counter()
        batch = fill_mask.masked_batch([eg.predicted for eg in batch_examples])
        t2 = time.perf_counter()
        encoder.train()
        hidden = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        predicted = batch["labels"] != -100
        loss = fill_mask.get_loss([], (head(hidden[predicted]), batch["labels"][predicted]))
        t3 = time.perf_counter()
        if step == args.steps - 1:
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                loss.backward()
            table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10)
        else:
            loss.backward()
        t4 = time.perf_counter()
        for p in list(encoder.parameters()) + list(head.parameters()):
            p.grad = None
        rows.append({"ner_step_s": t1 - t0, "mlm_batch_s": t2 - t1, "mlm_forward_s": t3 - t2, "mlm_backward_s": t4 - t3,
                     "mlm_windows": int(batch["input_ids"].shape[0]), "mlm_seq_len": int(batch["input_ids"].shape[1]),
                     "masked_tokens": int(predicted.sum())})
        print(rows[-1], file=sys.stderr)
    timed = rows[args.warmup : -1]  # the profiled step is slower: left out of the medians
    medians = {k: round(statistics.median(r[k] for r in timed), 4) for k in ("ner_step_s", "mlm_batch_s", "mlm_forward_s", "mlm_backward_s")}
    mlm = medians["mlm_batch_s"] + medians["mlm_forward_s"] + medians["mlm_backward_s"]
    row = {"bench": "mlm_pass_profile", "base_model": str(args.base_model), "share": args.share, "batch_size": args.batch_size,
           "torch_threads": torch.get_num_threads(), "medians": medians, "mlm_pass_over_ner_step": round(mlm / medians["ner_step_s"], 3),
           "steps": rows, "profile_of_last_backward": table,
           "command": " ".join(["python", "bench/profile_mlm_pass.py", *sys.argv[1:]])}
    append_jsonl(args.out, row)
    print(table)
    print({k: v for k, v in row.items() if k in ("medians", "mlm_pass_over_ner_step")})


if __name__ == "__main__":
    main()
