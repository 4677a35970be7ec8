"""AdamW and its learning-rate schedule for the pretraining loop, with an optional head warm-up.

With [training] head_warmup_steps = H > 0, the first H steps train the MLM head alone (the
encoder frozen) at head_warmup_lr; from step H the whole model trains at learning_rate with the
configured warm-up and decay, counted from H. With H = 0 the schedule is transformers' own.
"""

import math
from typing import Any, Callable, Dict, List

import torch

ADAMW_KERNELS = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for-loop": {"foreach": False}}


def encoder_trainable(model: torch.nn.Module, trainable: bool) -> None:
    """Freeze or unfreeze the encoder of an *ForMaskedLM model (the head stays trainable)."""
    for p in getattr(model, model.base_model_prefix).parameters():
        p.requires_grad_(trainable)


def make_optimizer(model: torch.nn.Module, train_cfg: Dict[str, Any], kernel: str = "foreach",
                   by_part: bool = False) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; biases and LayerNorm weights get no weight decay.
    kernel: fused (one kernel for all parameters), foreach (a few batched ops per group) or
    for-loop (one parameter at a time). by_part: the encoder's and the head's parameters in
    groups of their own (group["part"]), so that a schedule can treat them differently."""
    prefix = model.base_model_prefix + "."
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = []
    for part in ("encoder", "head") if by_part else ("all",):
        mine = [(n, p) for n, p in params if part == "all" or n.startswith(prefix) == (part == "encoder")]
        no_decay = [p for n, p in mine if p.ndim < 2 or "norm" in n.lower()]
        decay = [p for n, p in mine if not (p.ndim < 2 or "norm" in n.lower())]
        groups += [{"params": decay, "weight_decay": train_cfg["weight_decay"], "part": part},
                   {"params": no_decay, "weight_decay": 0.0, "part": part}]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]], lr=train_cfg["learning_rate"],
        betas=(train_cfg["beta1"], train_cfg["beta2"]), eps=train_cfg["eps"],
        **ADAMW_KERNELS[kernel],
    )


def make_scheduler(optimizer: torch.optim.Optimizer, train_cfg: Dict[str, Any], head_warmup: int = 0):
    """The learning-rate schedule: [training] schedule with warmup_steps over max_steps; with a
    head warm-up of `head_warmup` steps, that schedule runs over the steps after it."""
    from transformers import (
        get_constant_schedule_with_warmup,
        get_cosine_schedule_with_warmup,
        get_linear_schedule_with_warmup,
    )

    schedule, warmup, max_steps = train_cfg["schedule"], train_cfg["warmup_steps"], train_cfg["max_steps"]
    if head_warmup:
        return phased_scheduler(optimizer, train_cfg, head_warmup)
    if schedule == "constant":
        return get_constant_schedule_with_warmup(optimizer, warmup)
    make = get_cosine_schedule_with_warmup if schedule == "cosine" else get_linear_schedule_with_warmup
    return make(optimizer, warmup, max_steps)


def schedule_factor(schedule: str, step: int, warmup: int, total: int) -> float:
    """transformers' linear / cosine / constant schedule with warm-up, as a factor of the peak rate
    at `step` (its lambdas are private, and the phases need them shifted by the warm-up's steps)."""
    if step < warmup:
        return step / max(1, warmup)
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    return max(0.0, (total - step) / max(1, total - warmup))


def phased_scheduler(optimizer: torch.optim.Optimizer, train_cfg: Dict[str, Any], head_warmup: int):
    """Steps < head_warmup: the head at head_warmup_lr, the encoder at 0 (frozen); after: both on
    the configured schedule, restarted at step head_warmup over the remaining steps."""
    schedule, warmup, rest = train_cfg["schedule"], train_cfg["warmup_steps"], train_cfg["max_steps"] - head_warmup
    head_ratio = train_cfg["head_warmup_lr"] / train_cfg["learning_rate"]

    def factor(part: str) -> Callable[[int], float]:
        def f(step: int) -> float:
            if step < head_warmup:
                return head_ratio if part == "head" else 0.0
            return schedule_factor(schedule, step - head_warmup, warmup, rest)

        return f

    lambdas: List[Callable[[int], float]] = [factor(g["part"]) for g in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
