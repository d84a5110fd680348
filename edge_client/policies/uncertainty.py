"""How unsure the student is of its next token, read from its logits.

Both measures work in float64 on shifted logits, so large logits never overflow and the
softmax is never materialised as a separate array the caller keeps. Neither calls BLAS: on a
vocabulary-sized vector `np.dot` wakes OpenBLAS's threads, which spin on the cores llama.cpp
decodes on. One entropy per token made the student decode 3 times slower with 2 threads on
2 cores (`python -m benchmarks.edge_overhead --policy entropy --threads 2`).
"""

from __future__ import annotations

import numpy as np


def top_probability(logits: np.ndarray) -> float:
    """Softmax probability of the most likely token."""
    top = float(np.max(logits))
    return 1.0 / float(np.sum(np.exp(logits - top, dtype=np.float64)))


def entropy(logits: np.ndarray) -> float:
    """Shannon entropy of the next-token distribution, in nats (0: certain; ln V: uniform)."""
    shifted = logits.astype(np.float64) - float(np.max(logits))
    weights = np.exp(shifted)
    total = float(np.sum(weights))
    # H = log Z - sum(p * z) with p = e^z / Z, z the shifted logits.
    return float(np.log(total) - np.sum(weights * shifted) / total)
