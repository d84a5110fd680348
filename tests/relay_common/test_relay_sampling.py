"""Sampling never produces NaN, whatever the temperature or the logits."""

from __future__ import annotations

import numpy as np
import pytest

from relay_common.sampling import Sampler, SamplingParams, softmax

LOGITS = np.array([3.0, 40.0, -7.5, 39.999, 12.0], dtype=np.float32)


@pytest.mark.parametrize("temperature", [5e-324, 1e-300, 1e-30, 1e-8, 0.1, 1.0, 1e6, 1e308])
def test_softmax_is_a_distribution_at_any_temperature(temperature: float) -> None:
    probs = softmax(LOGITS, temperature=temperature)
    assert np.all(np.isfinite(probs))
    assert probs.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("temperature", [5e-324, 1e-30])
def test_a_tiny_temperature_samples_the_top_token(temperature: float) -> None:
    sampler = Sampler(SamplingParams(temperature=temperature, top_p=0.9, seed=1))
    assert {sampler.sample(LOGITS) for _ in range(20)} == {1}


def test_extreme_logits_are_still_a_distribution() -> None:
    logits = np.array([np.finfo(np.float32).max, -np.finfo(np.float32).max, -np.inf, 0.0])
    probs = softmax(logits.astype(np.float32), temperature=1e-30)
    assert np.all(np.isfinite(probs))
    assert probs[0] == 1.0


def test_equal_top_logits_share_the_mass_at_a_tiny_temperature() -> None:
    probs = softmax(np.array([5.0, 5.0, 1.0], dtype=np.float32), temperature=1e-300)
    assert probs.tolist() == [0.5, 0.5, 0.0]
