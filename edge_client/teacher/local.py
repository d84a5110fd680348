"""A teacher of one's own: `relay-teacher serve` started for the session, on a loopback port.

    with start_local_teacher(model=None) as teacher:       # the embedded Gemma by default
        client = GrpcTeacherClient(teacher.address)         # "127.0.0.1:PORT"
        ...
    # the process got SIGTERM (then SIGKILL if it lingered) and its temp dir is gone

The teacher binds port 0 and writes "HOST:PORT" to a ready file once it is SERVING; the edge
polls for that file. On Linux the teacher dies with the edge, however the edge ends (even
SIGKILL): the kernel sends it SIGTERM when its parent goes (PR_SET_PDEATHSIG). That signal
follows the thread that started the teacher, so start it from a thread that lives as long as
the session (the main thread in the CLI). Its output goes to a log file in a temp dir, never
to the user's terminal; when it exits before serving, the error carries the end of that log.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from edge_client.errors import ConfigError, EdgeError
from edge_client.teacher.address import parse_address

EXECUTABLE = "relay-teacher"
_POLL_S = 0.05
_STOP_GRACE_S = 15.0  # longer than the teacher's own drain (10 s by default)
_LOG_TAIL_CHARS = 2000
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class LocalTeacher:
    """A running local teacher; a context manager that stops it on exit."""

    def __init__(
        self,
        *,
        address: str,
        process: subprocess.Popen[bytes],
        workdir: tempfile.TemporaryDirectory[str],
    ) -> None:
        self.address = address
        self.log_path = Path(workdir.name) / "teacher.log"
        self._process = process
        self._workdir = workdir

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def close(self) -> None:
        """Stops the process (idempotent) and removes its temp dir, log included."""
        _stop(self._process)
        self._workdir.cleanup()

    def __enter__(self) -> LocalTeacher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def find_teacher_executable() -> str:
    """`relay-teacher` beside this Python (the same virtual environment) first, then on PATH."""
    found = shutil.which(EXECUTABLE, path=str(Path(sys.executable).parent)) or shutil.which(
        EXECUTABLE
    )
    if found is None:
        raise ConfigError(
            f"{EXECUTABLE} is not installed, so no local teacher can start; install the teacher "
            "(pip install relay-decoding) or use --teacher HOST:PORT or --teacher-free"
        )
    return found


def start_local_teacher(
    *,
    model: str | os.PathLike[str] | None = None,
    slots: int = 1,
    exact: bool = False,
    timeout_s: float = 120.0,
    extra_args: Sequence[str] = (),
) -> LocalTeacher:
    """Starts `relay-teacher serve` on a free loopback port and waits until it serves;
    `exact` makes its evaluation batch-invariant (see the teacher's --exact), `extra_args` are
    more `relay-teacher serve` flags (e.g. limits).

    Raises ConfigError when relay-teacher is missing, EdgeError when it exits before serving
    (with the end of its log) or is not serving within `timeout_s`.
    """
    executable = find_teacher_executable()
    workdir = tempfile.TemporaryDirectory(prefix="relay-teacher-")
    ready_file = Path(workdir.name) / "ready"
    log_path = Path(workdir.name) / "teacher.log"
    # Loopback only: a teacher for this session must not be reachable from the network.
    command = [executable, "serve", "--host", "127.0.0.1", "--port", "0"]
    command += ["--ready-file", str(ready_file)]
    # One session uses it: one slot, and a KV cache for that one session (not the server's 16).
    command += ["--slots", str(slots), "--kv-sessions", str(slots)]
    if exact:
        command.append("--exact")
    if model is not None:
        command += ["--model", os.fspath(model)]
    command += extra_args
    try:
        with log_path.open("wb") as log:
            # A session of its own: Ctrl-C in the terminal (which may only cancel an answer in
            # chat) does not reach the teacher; `close()` decides when it stops.
            process = subprocess.Popen(
                command,
                env=_without_teacher_settings(os.environ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )
    except OSError as exc:
        workdir.cleanup()
        raise EdgeError(f"cannot start {executable}: {exc}") from exc
    try:
        address = _wait_until_serving(
            process, ready_file=ready_file, log_path=log_path, timeout_s=timeout_s
        )
    except BaseException:
        _stop(process)
        workdir.cleanup()
        raise
    return LocalTeacher(address=address, process=process, workdir=workdir)


def _die_with_parent() -> Callable[[], None] | None:
    """For the child, before it runs the teacher: ask the kernel for SIGTERM when this process
    dies, so a hard-killed edge leaves no teacher behind. Linux only (None elsewhere: the
    teacher is then stopped by `close()` alone)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
    parent = os.getpid()

    def in_child() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the edge died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return in_child


def _wait_until_serving(
    process: subprocess.Popen[bytes], *, ready_file: Path, log_path: Path, timeout_s: float
) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        # The teacher writes the file atomically: it is absent or whole.
        if ready_file.exists():
            return parse_address(ready_file.read_text())
        if process.poll() is not None:
            raise EdgeError(
                f"the local teacher exited (code {process.returncode}) before serving:\n"
                f"{_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            raise EdgeError(
                f"the local teacher was not serving after {timeout_s:g} s; the end of its log:\n"
                f"{_tail(log_path)}"
            )
        time.sleep(_POLL_S)


def _without_teacher_settings(environment: Mapping[str, str]) -> dict[str, str]:
    """The environment less RELAY_TEACHER_* variables: those configure a teacher service (API
    keys, TLS, a public host), not this session's private loopback teacher, whose settings are
    the flags above."""
    return {
        name: value for name, value in environment.items() if not name.startswith("RELAY_TEACHER_")
    }


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=_STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(log_path: Path) -> str:
    text = log_path.read_text(errors="replace").strip()
    return text[-_LOG_TAIL_CHARS:] if text else "(its log is empty)"
