"""The machine an answer was made on, kept with its record.

Greedy decoding repeats itself on one machine, not across machines: llama.cpp picks its
kernels by the CPU's instruction sets (AVX-512, AMX, AVX2…), a logit that moves in its last
bits flips a near-tie, and the answer goes another way from there (docs/relay-quality.md
measures how often). Settings compare item by item only where one machine made both.
"""

from __future__ import annotations

import platform
import re
from functools import cache
from pathlib import Path

from relay_common.llama_import import llama_cpp

UNRECORDED = "unrecorded"  # records made before the machine was kept


@cache
def machine_signature() -> str:
    """The CPU model, llama.cpp's version and the CPU features its kernels use."""
    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    features = " ".join(re.findall(r"(\w+) = 1", info))
    return f"{_cpu_model()}; llama.cpp {llama_cpp.__version__}: {features}"


def _cpu_model() -> str:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        cpuinfo = ""
    found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    return found.group(1).strip() if found else (platform.processor() or platform.machine())
