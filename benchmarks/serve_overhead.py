"""`relay-edge serve` overhead: tokens/s of an answer streamed through the HTTP API ÷ tokens/s
of `relay-edge ask` on the same prompt and settings; time to first token through the API; and
how many prompt tokens a follow-up turn evaluates.

Starts one `relay-edge serve --port 0` and, alternating round by round, runs `relay-edge ask
PROMPT` (a process, as a user runs it; its streamed stdout is timed) and streams the same
prompt from the server (each content delta timed). Decoding is timed from the first token to
the last on both sides (the token count from the ledger for ask, from usage for serve). Time to
first token is from sending the request to the first content delta, against the same runtime
in this process (open_runtime: no HTTP) on the same prompt; each round asks a new question, so
both evaluate its prompt afresh. A first round, not counted, warms both up. Then a two-turn
conversation through the server: its second turn's prompt tokens, those served from the KV
cache, and those new since the first turn.
Prints one JSON line.

    python -m benchmarks.serve_overhead [--tokens 128] [--rounds 5] [-- EXTRA relay-edge FLAGS]

EXTRA flags (`--name VALUE` or `--switch`) go to `serve`, `ask` and the in-process runtime
(default: --teacher-free).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from edge_client.ledger.store import Ledger
from edge_client.relay.events import TokensAppended
from edge_client.runtime import EdgeRuntime, open_runtime
from edge_client.settings import load_settings
from relay_common.chat import ChatMessage

RELAY_EDGE = str(Path(sys.executable).with_name("relay-edge"))
QUESTION = "Round {}: write a long story about a lighthouse keeper and the sea."
_URL_LINE = re.compile(r"relay-edge serve on (http://\S+)/ ")


def decode_rate(stamps: list[float], tokens: int) -> float:
    """Tokens/s from the first token to the last."""
    return (tokens - 1) / (stamps[-1] - stamps[0])


def ask_rate(env: dict[str, str], ledger: Path, question: str, args: list[str]) -> float:
    """`relay-edge ask`'s decoding rate: its stdout chunks timed as they arrive."""
    process = subprocess.Popen(
        [RELAY_EDGE, "ask", question, *args], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    stamps = []
    while chunk := os.read(process.stdout.fileno(), 65536):
        if chunk.strip():
            stamps.append(time.perf_counter())
    if process.wait() != 0:
        raise RuntimeError("relay-edge ask failed")
    with Ledger(ledger) as opened:
        usage = opened.sessions()[0].usage  # the newest: this ask's
    return decode_rate(stamps, usage.generated_tokens)


def serve_answer(url: str, model: str, messages: list[dict], args: argparse.Namespace,
                 *, session: str | None = None) -> tuple[float, float, dict, str]:  # fmt: skip
    """(decoding rate, time to first token, usage, text) of one streamed answer."""
    body = {
        "model": model, "messages": messages, "max_tokens": args.tokens, "temperature": 0,
        "stream": True, "stream_options": {"include_usage": True},
    }  # fmt: skip
    headers = {"x-relay-session": session} if session else {}
    stamps, usage, text = [], {}, ""
    started = time.perf_counter()
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers,
                      timeout=600) as response:  # fmt: skip
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line.removeprefix("data: "))
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                stamps.append(time.perf_counter())
                text += chunk["choices"][0]["delta"]["content"]
            if chunk.get("usage"):
                usage = chunk["usage"]
    return (decode_rate(stamps, usage["completion_tokens"]), stamps[0] - started, usage, text)


def runtime_first_token_s(runtime: EdgeRuntime, question: str) -> float:
    """Time to the first token of the runtime itself (no HTTP); the rest is not written."""
    started = time.perf_counter()
    elapsed = None
    for event in runtime.answer([ChatMessage("user", question)]):
        if elapsed is None and isinstance(event, TokensAppended) and event.text:
            elapsed = time.perf_counter() - started
            runtime.cancel.set()
    if elapsed is None:
        raise RuntimeError("the runtime wrote no token")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("flags", nargs="*", default=["--teacher-free"])
    args = parser.parse_args()
    common = ["--max-tokens", str(args.tokens), "--temperature", "0", *args.flags]
    with tempfile.TemporaryDirectory() as home:
        config, ledger = Path(home) / "config.toml", Path(home) / "ledger.db"
        config.write_text("")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        env |= {"RELAY_LEDGER_PATH": str(ledger), "RELAY_CONFIG": str(config)}
        log = Path(home) / "serve.log"
        with log.open("wb") as out:
            server = subprocess.Popen(
                [RELAY_EDGE, "serve", "--port", "0", *common], env=env, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            while (found := _URL_LINE.search(log.read_text(errors="replace"))) is None:
                if server.poll() is not None:
                    raise RuntimeError(f"relay-edge serve did not start:\n{log.read_text()}")
                time.sleep(0.1)
            url = found.group(1)
            model = httpx.get(f"{url}/health", timeout=60).json()["model"]
            result = measure(url, model, env, ledger, common, args, config)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=120)
    print(json.dumps(result))


def measure(
    url: str,
    model: str,
    env: dict[str, str],
    ledger: Path,
    common: list[str],
    args: argparse.Namespace,
    config: Path,
) -> dict[str, object]:
    ask_rates, serve_rates, serve_ttft, runtime_ttft = [], [], [], []
    settings = load_settings(
        config_file=config, ledger_path=ledger.with_name("runtime.db"), **_settings_flags(common)
    )
    with open_runtime(settings) as runtime:
        # A round not counted: both sides' first answers pay for cold caches and pages.
        serve_answer(url, model, [{"role": "user", "content": QUESTION.format("w")}], args)
        runtime_first_token_s(runtime, QUESTION.format("w"))
        for round_number in range(args.rounds):
            question = QUESTION.format(round_number)
            ask_rates.append(ask_rate(env, ledger, question, common))
            rate, ttft, _, _ = serve_answer(
                url, model, [{"role": "user", "content": question}], args
            )
            serve_rates.append(rate)
            serve_ttft.append(ttft)
            runtime_ttft.append(runtime_first_token_s(runtime, question))
    # A follow-up turn: only what is new since the first turn is evaluated.
    first_question = {"role": "user", "content": "What is the capital of France?"}
    _, _, first, answer = serve_answer(url, model, [first_question], args, session="two-turns")
    follow_up = [first_question, {"role": "assistant", "content": answer},
                 {"role": "user", "content": "And of Italy?"}]  # fmt: skip
    _, _, second, _ = serve_answer(url, model, follow_up, args, session="two-turns")
    cached = second["prompt_tokens_details"]["cached_tokens"]
    return {
        "model": model,
        "flags": args.flags,
        "tokens": args.tokens,
        "rounds": args.rounds,
        "ask_tok_s": round(statistics.median(ask_rates), 1),
        "serve_tok_s": round(statistics.median(serve_rates), 1),
        "ratio": round(statistics.median(serve_rates) / statistics.median(ask_rates), 3),
        "serve_ttft_s": round(statistics.median(serve_ttft), 3),
        "runtime_ttft_s": round(statistics.median(runtime_ttft), 3),
        "ttft_ratio": round(statistics.median(serve_ttft) / statistics.median(runtime_ttft), 3),
        "follow_up_prompt_tokens": second["prompt_tokens"],
        "follow_up_cached_tokens": cached,
        "follow_up_evaluated_tokens": second["prompt_tokens"] - cached,
        "follow_up_new_tokens": second["prompt_tokens"]
        - first["prompt_tokens"]
        - first["completion_tokens"],
    }


def _settings_flags(flags: list[str]) -> dict[str, object]:
    """The flags (`--name VALUE` or `--switch`) as settings for the in-process runtime."""
    values: dict[str, object] = {}
    index = 0
    while index < len(flags):
        name = flags[index].removeprefix("--").replace("-", "_")
        if index + 1 < len(flags) and not flags[index + 1].startswith("--"):
            values[name] = flags[index + 1]
            index += 2
        else:
            values[name] = True
            index += 1
    return values


if __name__ == "__main__":
    main()
