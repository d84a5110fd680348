"""start_local_teacher with the real `relay-teacher`, and GrpcTeacherClient against it."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from edge_client.errors import ConfigError, EdgeError
from edge_client.teacher.client import SpanQuery, TeacherState
from edge_client.teacher.grpc_client import GrpcTeacherClient
from edge_client.teacher.local import find_teacher_executable, start_local_teacher
from edge_client.teacher.settings import TeacherClientSettings
from relay_common.chat import ChatMessage
from relay_common.embedded import smollm2_path
from relay_common.sampling import SamplingParams

try:
    find_teacher_executable()
    MISSING = ""
except ConfigError as exc:
    MISSING = str(exc)
needs_teacher = pytest.mark.skipif(bool(MISSING), reason=MISSING)


@needs_teacher
def test_real_teacher_serves_info_and_a_text_span_then_stops(monkeypatch, tmp_path) -> None:
    # Settings of a teacher service in the user's environment (here: API keys) are not the
    # private local teacher's: it serves this session without a key.
    keys = tmp_path / "keys"
    keys.write_text("service:0123456789abcdef0123\n")
    monkeypatch.setenv("RELAY_TEACHER_API_KEY_FILE", str(keys))
    with start_local_teacher(model=smollm2_path()) as teacher:
        assert teacher.address.startswith("127.0.0.1:")
        workdir = teacher.log_path.parent
        # Patient: the first span of a fresh teacher on a busy machine can take many seconds.
        client = GrpcTeacherClient(
            teacher.address,
            settings=TeacherClientSettings(deadline_s=120, latency_budget_s=240),
        )
        try:
            info = client.info()
            reply = client.generate_span(
                SpanQuery(
                    session_id="local-test",
                    request_id="r1",
                    max_tokens=4,
                    sampling=SamplingParams(),
                    messages=[ChatMessage("user", "Name a colour.")],
                    assistant_prefix="A colour:",
                )
            )
        finally:
            client.close()

    assert info.tokenizer_fingerprint.startswith("sha256:")
    assert info.max_span_tokens > 0
    assert 1 <= len(reply.token_ids) <= 4
    assert reply.text
    assert reply.compute_ms > 0
    assert client.state is TeacherState.ONLINE
    assert not teacher.running
    assert not workdir.exists()


@needs_teacher
def test_teacher_that_exits_early_reports_its_error(tmp_path: Path) -> None:
    with pytest.raises(EdgeError, match="exited") as raised:
        start_local_teacher(model=tmp_path / "missing.gguf")

    assert "missing.gguf" in str(raised.value)  # the teacher's own message, from its log


def processes_mentioning(text: str) -> list[str]:
    """Live processes whose command line contains `text` (Linux /proc)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                found.append(cmdline.parent.name)
        except OSError:  # the process ended while we looked
            continue
    return found


@needs_teacher
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
def test_teacher_not_serving_in_time_is_stopped_and_cleaned_up(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the teacher's temp dir goes here

    with pytest.raises(EdgeError, match="not serving after"):
        start_local_teacher(model=smollm2_path(), timeout_s=0.01)

    assert processes_mentioning(str(tmp_path)) == []
    assert list(tmp_path.iterdir()) == []


def test_missing_executable_says_what_to_do(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(ConfigError, match="--teacher HOST:PORT or --teacher-free"):
        start_local_teacher()


EDGE_THAT_STARTS_A_TEACHER = """
import sys, threading
from edge_client.teacher.settings import TeacherClientSettings
from edge_client.teacher.local import start_local_teacher
from relay_common.embedded import smollm2_path
teacher = start_local_teacher(model=smollm2_path())
print(teacher.pid, flush=True)
threading.Event().wait()  # until killed
"""


def _exited(pid: int) -> bool:
    """True once `pid` is gone or a zombie (dead, waiting for whoever adopted it to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in {"Z", "X"}


@needs_teacher
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.timeout(180)
def test_the_teacher_dies_with_a_killed_edge() -> None:
    edge = subprocess.Popen(
        [sys.executable, "-c", EDGE_THAT_STARTS_A_TEACHER], stdout=subprocess.PIPE, text=True
    )
    try:
        teacher_pid = int(edge.stdout.readline())
        assert not _exited(teacher_pid)
    finally:
        edge.kill()  # SIGKILL: no clean-up code of the edge runs
        edge.wait()

    deadline = time.monotonic() + 120  # the teacher drains (up to 10 s), on a busy machine
    while not _exited(teacher_pid):
        assert time.monotonic() < deadline, f"teacher {teacher_pid} outlived its edge"
        time.sleep(0.1)
