"""Token sampling from next-position logits: greedy at temperature 0, else temperature + top-p."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to pick the next token. `temperature == 0` is greedy; `top_p` 1.0 keeps all tokens."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


class Sampler:
    """Samples token ids with its own seeded random generator (one per answer or span)."""

    def __init__(self, params: SamplingParams) -> None:
        self.params = params
        self._rng = np.random.default_rng(params.seed)

    def sample(self, logits: npt.NDArray[np.float32]) -> int:
        if self.params.temperature == 0:
            return int(np.argmax(logits))
        probs = softmax(logits, temperature=self.params.temperature)
        if self.params.top_p < 1:
            order = np.argsort(probs)[::-1]
            cumulative = np.cumsum(probs[order])
            # Keep the smallest prefix whose mass reaches top_p (at least one token).
            keep = order[: int(np.searchsorted(cumulative, self.params.top_p)) + 1]
            kept = probs[keep] / probs[keep].sum()
            return int(keep[self._rng.choice(len(keep), p=kept)])
        return int(self._rng.choice(len(probs), p=probs))


def softmax(
    logits: npt.NDArray[np.float32], *, temperature: float = 1.0
) -> npt.NDArray[np.float64]:
    """Probabilities of `logits` at `temperature` (> 0), never NaN.

    The maximum is subtracted before dividing, in float64: every scaled logit is then <= 0, so
    even a temperature as small as 5e-324 gives -inf (probability 0) or 0 (the top tokens,
    sharing the mass), where dividing first overflows to inf and inf - inf is NaN.
    """
    as_float64 = logits.astype(np.float64)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        scaled = (as_float64 - np.max(as_float64)) / temperature
    # 0 / tiny is 0, but -0.0 and NaN logits must not leak: anything not < 0 is a top token.
    scaled = np.where(scaled < 0, scaled, 0.0)
    weights = np.exp(scaled)
    return weights / weights.sum()
