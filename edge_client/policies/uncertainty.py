"""How unsure the student is of its next token, read from its logits.

Both measures work on shifted logits (all <= 0), so large logits never overflow, and sum in
float64; the softmax is never materialised as a separate array the caller keeps. The entropy
exponentiates in float32 (5-8 times faster over a 152k vocabulary than in float64, equal to
1e-8 nats), since the router policy reads it at every token. Neither calls BLAS: on a
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
    shifted = np.asarray(logits, dtype=np.float32) - np.float32(np.max(logits))
    weights = np.exp(shifted)
    total = float(np.sum(weights, dtype=np.float64))
    # H = log Z - sum(p * z) with p = e^z / Z, z the shifted logits (einsum: no BLAS).
    weighted = float(np.einsum("i,i->", weights, shifted, dtype=np.float64))
    return float(np.log(total) - weighted / total)
