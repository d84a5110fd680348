"""llama.cpp processes sharing the cores: ms a token alone and with another process decoding
at the same time, under libgomp's own spinning (GOMP_SPINCOUNT=300000), the project's
(relay_common/llama_import.py) and none (OMP_WAIT_POLICY=PASSIVE), in one run.

Each measurement runs in fresh processes (libgomp reads the setting when it loads): one
process decodes alone, then two decode at once, started together once both have loaded the
model. The settings alternate round by round so other work on the machine hits them alike.
`together ÷ alone` is 2.0 where two processes share the cores without loss. Prints one JSON
line.

    python -m benchmarks.spin_contention [--model PATH] [--tokens 40] [--rounds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from relay_common.llama_import import SPIN_ROUNDS

SETTINGS = {
    "libgomp_default": {"GOMP_SPINCOUNT": "300000"},
    "project": {"GOMP_SPINCOUNT": str(SPIN_ROUNDS)},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
}


def decode(model: str, tokens: int, threads: int) -> None:
    """The child: loads `model`, says "ready", waits for a line, decodes `tokens` tokens one
    at a time and prints the median ms a token."""
    from relay_common.gguf import GgufModel

    gguf = GgufModel(model, n_ctx=512, n_threads=threads)
    prompt = gguf.tokenize("def fibonacci(n):\n    " * 4)
    gguf.append(prompt)
    print("ready", flush=True)
    sys.stdin.readline()
    times = []
    for _ in range(tokens):
        started = time.perf_counter()
        gguf.append(prompt[-1:])
        times.append(time.perf_counter() - started)
    print(statistics.median(times) * 1000, flush=True)


def run_at_once(count: int, *, setting: dict[str, str], args: argparse.Namespace) -> list[float]:
    """`count` child processes decoding at the same time: each one's median ms a token."""
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    env |= setting
    command = [sys.executable, "-m", "benchmarks.spin_contention", "--child", args.model]
    command += ["--tokens", str(args.tokens), "--threads", str(args.threads)]
    children = [
        subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    results = [float(child.communicate()[0]) for child in children]
    if any(child.returncode for child in children):
        raise RuntimeError("a decoding process failed")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="GGUF (default: Qwen2.5-Coder-1.5B)")
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        decode(args.child, args.tokens, args.threads)
        return
    if args.model is None:
        from relay_common.qwen_pair import teacher_path

        args.model = str(teacher_path())
    alone: dict[str, list[float]] = {name: [] for name in SETTINGS}
    together: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for _ in range(args.rounds):
        for name, setting in SETTINGS.items():
            alone[name] += run_at_once(1, setting=setting, args=args)
            together[name] += run_at_once(2, setting=setting, args=args)
    result: dict[str, object] = {"model": os.path.basename(args.model), "threads": args.threads}
    default_alone = statistics.median(alone["libgomp_default"])
    for name, setting in SETTINGS.items():
        ms_alone, ms_together = statistics.median(alone[name]), statistics.median(together[name])
        result[name] = {
            **setting,
            "alone_ms": round(ms_alone, 1),
            "together_ms": round(ms_together, 1),
            "together_over_alone": round(ms_together / ms_alone, 2),
            "alone_over_default_alone": round(ms_alone / default_alone, 3),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
