"""Head warm-up: the first head_warmup_steps train the MLM head alone, then the whole model trains
on the configured schedule counted from there; resuming inside or after the warm-up changes nothing."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    BertConfig,
    BertForMaskedLM,
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

from spacy_mlm.errors import SpacyMlmError
from spacy_mlm.pretrain.loop import pretrain
from spacy_mlm.pretrain.optim import make_optimizer, make_scheduler

from .pretrain_fixtures import CONFIG, overrides, stopped_run

pytest_plugins = ["tests.pretrain_fixtures"]

T = {"weight_decay": 0.01, "learning_rate": 1e-4, "beta1": 0.9, "beta2": 0.98, "eps": 1e-6, "warmup_steps": 3,
     "max_steps": 20, "head_warmup_lr": 2e-3}
HF = {"linear": lambda o, w, n: get_linear_schedule_with_warmup(o, w, n),
      "cosine": lambda o, w, n: get_cosine_schedule_with_warmup(o, w, n),
      "constant": lambda o, w, n: get_constant_schedule_with_warmup(o, w)}


def tiny_mlm() -> BertForMaskedLM:
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    return BertForMaskedLM(config)


def rates(scheduler, optimizer, steps):
    out = []
    for _ in range(steps):
        out.append({g["part"]: g["lr"] for g in optimizer.param_groups})
        optimizer.step()
        scheduler.step()
    return out


@pytest.mark.parametrize("schedule", ["linear", "cosine", "constant"])
def test_phased_schedule_is_the_plain_one_shifted(schedule):
    settings = {**T, "schedule": schedule}
    head_warmup = 5
    opt = make_optimizer(tiny_mlm(), settings, by_part=True)
    assert {g["part"] for g in opt.param_groups} == {"encoder", "head"}
    phased = rates(make_scheduler(opt, settings, head_warmup), opt, settings["max_steps"])
    ref_opt = torch.optim.AdamW(tiny_mlm().parameters(), lr=settings["learning_rate"])
    ref_sched = HF[schedule](ref_opt, settings["warmup_steps"], settings["max_steps"] - head_warmup)
    reference = []
    for _ in range(settings["max_steps"] - head_warmup):
        reference.append(ref_opt.param_groups[0]["lr"])
        ref_opt.step()
        ref_sched.step()
    for step in range(head_warmup):
        assert phased[step] == {"encoder": 0.0, "head": pytest.approx(settings["head_warmup_lr"])}
    for k, lr in enumerate(reference):
        assert phased[head_warmup + k] == {"encoder": pytest.approx(lr, abs=1e-12), "head": pytest.approx(lr, abs=1e-12)}


def test_no_warmup_keeps_transformers_schedule_and_two_groups():
    settings = {**T, "schedule": "linear"}
    opt = make_optimizer(tiny_mlm(), settings)
    assert len(opt.param_groups) == 2  # as checkpoints written before the warm-up existed hold
    got = [r["all"] for r in rates(make_scheduler(opt, settings), opt, settings["max_steps"])]
    ref_opt = torch.optim.AdamW(tiny_mlm().parameters(), lr=settings["learning_rate"])
    ref = get_linear_schedule_with_warmup(ref_opt, settings["warmup_steps"], settings["max_steps"])
    want = []
    for _ in range(settings["max_steps"]):
        want.append(ref_opt.param_groups[0]["lr"])
        ref_opt.step()
        ref.step()
    assert got == want


def encoder_weights(path):
    return {k: v for k, v in load_file(str(path)).items() if k.startswith("bert.")}


def test_warmup_trains_the_head_alone_then_everything(tmp_path, pt_corpus, pt_model):
    o = overrides(*pt_corpus, pt_model, training__max_steps=5, training__eval_frequency=0,
                  training__head_warmup_steps=3, training__checkpoint_frequency=3, training__keep_checkpoints=3)
    final = pretrain(CONFIG, tmp_path / "run", o)
    start = load_file(str(pt_model / "model.safetensors"))
    at_3 = load_file(str(tmp_path / "run" / "checkpoints" / "step_00000003" / "model.safetensors"))
    end = load_file(str(final / "model.safetensors"))
    encoder = [k for k in start if k.startswith("bert.")]
    head = [k for k in start if k.startswith("cls.") and k in at_3]
    assert encoder and head
    for k in encoder:  # frozen during the warm-up
        assert torch.equal(start[k], at_3[k]), k
    assert max(float((start[k] - at_3[k]).abs().max()) for k in head) > 1e-4  # the head trained
    assert max(float((at_3[k] - end[k]).abs().max()) for k in encoder) > 1e-5  # then the encoder did
    lrs = [json.loads(x)["lr"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # The logged lr is the next step's: head_warmup_lr (the default) for steps 2-3, then the
    # whole model's schedule from its own warm-up's 0.
    assert lrs[:3] == pytest.approx([1e-3, 1e-3, 0.0])


@pytest.mark.parametrize("after_step", [2, 4])
def test_resume_inside_and_after_the_warmup_equals_one_run(tmp_path, pt_corpus, pt_model, after_step):
    o = overrides(*pt_corpus, pt_model, training__max_steps=6, training__eval_frequency=0,
                  training__head_warmup_steps=3, training__checkpoint_frequency=1, training__keep_checkpoints=1)
    full = pretrain(CONFIG, tmp_path / "full", o)
    stopped_run(tmp_path / "cut", o, after_step=after_step)
    resumed = pretrain(CONFIG, tmp_path / "cut", o, resume=True)
    a, b = load_file(str(full / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)


def test_warmup_as_long_as_the_run_is_an_error(pt_corpus, pt_model):
    from spacy_mlm.pretrain.config import load_config

    with pytest.raises(SpacyMlmError, match=r"head_warmup_steps = 5: use a whole number from 0 to max_steps - 1 = 4"):
        load_config(CONFIG, overrides(*pt_corpus, pt_model, training__max_steps=5, training__head_warmup_steps=5))
