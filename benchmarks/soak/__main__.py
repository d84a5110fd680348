"""The randomized soak of the teacher, as long as you like:

    python -m benchmarks.soak --minutes 30 [--engine llama.cpp|vllm] [--exact] [--seed 0]

Starts `relay-teacher serve --engine ENGINE` (SmolLM2-135M, n_ctx 512, spans of up to 32
tokens, 8 slots and 16 KV sessions, two API keys) and runs randomized scenarios against it
(benchmarks/soak/scenarios.py) until the time is up, checking the invariants of
benchmarks/soak/driver.py after each. A line per scenario goes to stderr; at the end one JSON
line: scenarios run, calls, errors by status code, greedy spans checked (exact mode only),
the teacher's resident memory (its process and children) at the start, the end and its most,
and every invariant that did not hold. Exits 1 when one did not.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys

from benchmarks.soak.run import SoakReport, run_soak
from benchmarks.soak.teacher import soak_teacher


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=2.0, help="how long to run")
    parser.add_argument("--engine", choices=["llama.cpp", "vllm"], default="llama.cpp")
    parser.add_argument(
        "--exact", action="store_true", help="llama.cpp in exact mode: greedy spans are checked"
    )
    parser.add_argument("--seed", type=int, default=0, help="the first scenario's seed")
    args = parser.parse_args()

    def progress(report: SoakReport) -> None:
        print(
            f"{report.minutes:6.1f} min  scenarios {report.scenarios}  calls {report.calls}  "
            f"errors {report.errors_by_code}  rss {report.rss_end_mib:.0f} MiB  "
            f"violations {len(report.violations)}",
            file=sys.stderr,
            flush=True,
        )

    with soak_teacher(engine=args.engine, exact=args.exact) as teacher:
        report = run_soak(
            teacher, seeds=itertools.count(args.seed), minutes=args.minutes, progress=progress
        )
    print(json.dumps(dataclasses.asdict(report)))
    sys.exit(1 if report.violations else 0)


if __name__ == "__main__":
    main()
