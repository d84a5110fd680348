"""One soak: scenario after scenario against one teacher, until the seeds or the time run out,
checking after each that the teacher process is still there; the report says what ran and
what did not hold.

    with soak_teacher(engine="vllm", exact=False) as teacher:
        report = run_soak(teacher, seeds=range(100), minutes=2)
    report.violations   # [] when the teacher held
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import grpc

from benchmarks.soak.driver import Soak
from benchmarks.soak.scenarios import SoakLimits, draw_scenario
from benchmarks.soak.teacher import SoakTeacher
from relay_proto import relay_pb2, relay_pb2_grpc

MiB = 1 << 20


@dataclass(slots=True)
class SoakReport:
    engine: str
    exact: bool
    minutes: float = 0.0
    scenarios: int = 0
    calls: int = 0
    errors_by_code: dict[str, int] = field(default_factory=dict)  # every status but OK
    greedy_checked: int = 0
    rss_start_mib: float = 0.0
    rss_end_mib: float = 0.0
    rss_max_mib: float = 0.0
    violations: list[str] = field(default_factory=list)


def run_soak(
    teacher: SoakTeacher,
    *,
    seeds: Iterable[int],
    minutes: float | None = None,
    progress: Callable[[SoakReport], None] = lambda report: None,
) -> SoakReport:
    """Runs a scenario per seed (stopping after `minutes`, when given) and reports."""
    return asyncio.run(_run(teacher, seeds=seeds, minutes=minutes, progress=progress))


async def _run(
    teacher: SoakTeacher,
    *,
    seeds: Iterable[int],
    minutes: float | None,
    progress: Callable[[SoakReport], None],
) -> SoakReport:
    report = SoakReport(engine=teacher.engine, exact=teacher.exact)
    report.rss_start_mib = report.rss_max_mib = teacher.rss_bytes() / MiB
    started = time.monotonic()
    async with grpc.aio.insecure_channel(teacher.address) as channel:
        stub = relay_pb2_grpc.TeacherServiceStub(channel)
        metadata = (("authorization", f"Bearer {teacher.keys[0]}"),)
        info = await stub.GetInfo(relay_pb2.GetInfoRequest(), metadata=metadata, timeout=60)
        limits = SoakLimits(
            max_context_tokens=info.limits.max_context_tokens,
            max_span_tokens=info.limits.max_span_tokens,
            keys=len(teacher.keys),
        )
        soak = Soak(channel, keys=teacher.keys, info=info, exact=teacher.exact)
        for seed in seeds:
            if minutes is not None and time.monotonic() - started > minutes * 60:
                break
            try:
                await soak.run(draw_scenario(seed=seed, limits=limits))
            except grpc.aio.AioRpcError as exc:  # the teacher went away mid-check
                soak.tally.violations.append(f"scenario {seed}: {exc.code().name}")
            rss = teacher.rss_bytes() / MiB
            report.rss_max_mib = max(report.rss_max_mib, rss)
            report.rss_end_mib = rss
            if not teacher.running:
                soak.tally.violations.append(
                    f"the teacher exited during scenario {seed}; its log ends:\n"
                    f"{teacher.log_tail()}"
                )
                break
            _fill(report, soak, started)
            progress(report)
    soak.tally.violations += [
        f"a log line of {len(line.encode())} bytes: {line[:200]}"
        for line in teacher.long_log_lines()
    ]
    _fill(report, soak, started)
    return report


def _fill(report: SoakReport, soak: Soak, started: float) -> None:
    tally = soak.tally
    report.minutes = round((time.monotonic() - started) / 60, 2)
    report.scenarios = tally.scenarios
    report.calls = tally.calls
    report.errors_by_code = {code: n for code, n in sorted(tally.codes.items()) if code != "OK"}
    report.greedy_checked = tally.greedy_checked
    report.violations = list(tally.violations)
