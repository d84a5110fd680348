"""What exactness costs: prompt evaluation time at n_ubatch 1 (batch-invariant, exact mode)
÷ at n_ubatch 512 (the default), same model and prompt. Decoding (one token per step) is unaffected.

    python -m benchmarks.prefill_ubatch [--prompt-tokens 200] [--rounds 3] [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from relay_common.embedded import smollm2_path
from relay_common.gguf import GgufModel


def prefill_seconds(model: GgufModel, tokens: list[int]) -> float:
    model.reset()
    started = time.perf_counter()
    model.append(tokens)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt-tokens", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    path = args.model or smollm2_path()
    exact = GgufModel(path, n_ctx=2048, n_ubatch=1)
    batched = GgufModel(path, n_ctx=2048, n_ubatch=512)
    tokens = (exact.tokenize("The quick brown fox jumps over the lazy dog. ") * 200)[
        : args.prompt_tokens
    ]
    one, many = [], []
    for _ in range(args.rounds):
        one.append(prefill_seconds(exact, tokens))
        many.append(prefill_seconds(batched, tokens))
    print(
        json.dumps(
            {
                "model": exact.name,
                "prompt_tokens": len(tokens),
                "ubatch1_s": round(statistics.median(one), 3),
                "ubatch512_s": round(statistics.median(many), 3),
                "slowdown": round(statistics.median(one) / statistics.median(many), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
