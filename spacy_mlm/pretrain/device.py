"""Where and how the pretraining loop runs: the processes (torchrun's DDP), the device, the
precision ("auto": bf16 where the hardware runs it natively) and the module the step calls."""

import os
from contextlib import nullcontext
from pathlib import Path
from typing import Set, Tuple

import torch

from ..errors import SpacyMlmError
from .model import SparseMLM


def init_processes(gpu_id: int) -> Tuple[int, int, torch.device]:
    """(world size, rank, device); torchrun sets WORLD_SIZE/RANK/LOCAL_RANK."""
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = gpu_id >= 0
    if use_cuda and not torch.cuda.is_available():
        raise SpacyMlmError(f"gpu_id = {gpu_id} but CUDA is not available: use --gpu-id -1 for CPU.")
    device = torch.device(f"cuda:{local_rank if world > 1 else gpu_id}") if use_cuda else torch.device("cpu")
    if world > 1 and not torch.distributed.is_initialized():
        if use_cuda:
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    return world, rank, device


def barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


def wrap(model: torch.nn.Module, compile_: bool, world: int, device: torch.device) -> torch.nn.Module:
    """The module the step calls: sparse MLM, compiled, under DDP as the settings say."""
    net: torch.nn.Module = SparseMLM(model)
    if compile_:
        net = torch.compile(net)
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    return net


def cpu_flags() -> Set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


def native_bf16(device: torch.device) -> bool:
    """Does the hardware multiply bf16 matrices natively? Elsewhere torch emulates bf16, which on
    an AVX2 CPU is ~100x slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    # torch's own kernel level too: ATEN_CPU_CAPABILITY=avx2 makes an AVX512-BF16 CPU run as an AVX2 one.
    avx512 = torch.backends.cpu.get_cpu_capability().startswith(("AVX512", "AMX"))
    return avx512 and bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def resolve_precision(precision: str, device: torch.device) -> str:
    """[training] precision, with "auto" resolved: bf16 where the hardware runs it natively, else fp32."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def make_autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise SpacyMlmError("precision = fp16 needs a GPU (--gpu-id 0); on CPU use bf16 or fp32.")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)
