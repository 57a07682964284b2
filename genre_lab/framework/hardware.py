"""What the machine can do, for defaults that depend on it."""

from __future__ import annotations

from pathlib import Path

import torch


def cpu_has_bf16() -> bool:
    """AVX-512 BF16 or AMX: bf16 matmuls run natively (elsewhere bf16 autocast is slower than fp32)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def default_precision() -> str:
    """``bf16-mixed`` where the device computes bf16 natively (recent GPUs, AVX-512-BF16/AMX CPUs), else fp32."""
    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_bf16() else "32-true"
