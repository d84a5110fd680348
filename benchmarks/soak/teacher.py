"""The teacher the soak runs against: `relay-teacher serve` in a process of its own (so that a
native abort shows as its exit, not the soak's), with two API keys and small limits, so that
contexts reach `max_context_tokens` and sessions outnumber the KV sequences.

    with soak_teacher(engine="llama.cpp", exact=False) as teacher:
        teacher.address, teacher.keys, teacher.running, teacher.rss_bytes()
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edge_client.teacher.local import LocalTeacher, start_local_teacher
from relay_common.embedded import smollm2_path

# 8 sessions generated at once and 16 cached (the defaults), so 32 sessions evict one another;
# contexts reach n_ctx - max_span_tokens.
SLOTS = 8
KV_SESSIONS = 16
# llama.cpp's threads wait for each other at every step: on a machine busy with other work a
# 32-token span took 219 s with 2 threads on 2 cores and 1.4 s with one (load average 12).
THREADS = 1


@dataclass(frozen=True, slots=True)
class SoakTeacher:
    process: LocalTeacher
    keys: list[str]
    engine: str
    exact: bool

    @property
    def address(self) -> str:
        return self.process.address

    @property
    def running(self) -> bool:
        return self.process.running

    def rss_bytes(self) -> int:
        """Resident memory of the teacher and its children (vLLM's engine core), in bytes."""
        return sum(_rss(pid) for pid in _tree(self.process.pid))

    def log_tail(self, chars: int = 4000) -> str:
        return self.process.log_path.read_text(errors="replace")[-chars:]

    def long_log_lines(self, limit: int = 1024) -> list[str]:
        """Lines the teacher's own loggers wrote that are `limit` bytes or longer."""
        lines = self.process.log_path.read_text(errors="replace").splitlines()
        return [line for line in lines if " cloud_teacher." in line and len(line.encode()) >= limit]


@contextmanager
def soak_teacher(
    *, engine: str, exact: bool, n_ctx: int = 512, max_span_tokens: int = 32
) -> Iterator[SoakTeacher]:
    """`relay-teacher serve` on SmolLM2-135M (the GGUF for llama.cpp, its HF copy for vLLM)."""
    keys = [secrets.token_hex(16), secrets.token_hex(16)]
    with tempfile.TemporaryDirectory(prefix="relay-soak-") as folder:
        key_file = Path(folder) / "keys.txt"
        key_file.write_text("".join(f"key{n}:{key}\n" for n, key in enumerate(keys)))
        flags = ["--engine", engine, "--n-ctx", str(n_ctx), "--kv-sessions", str(KV_SESSIONS)]
        flags += ["--max-span-tokens", str(max_span_tokens), "--api-key-file", str(key_file)]
        flags += ["--threads", str(THREADS)]
        with start_local_teacher(
            model=smollm2_path() if engine == "llama.cpp" else None,
            slots=SLOTS,
            exact=exact,
            timeout_s=900,
            extra_args=flags,
        ) as process:
            yield SoakTeacher(process=process, keys=keys, engine=engine, exact=exact)


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
