"""llama.cpp's OpenMP threads spin only briefly while they wait, in every process that runs it:
the student's (`relay-edge`), the local teacher's, and any that imports the project's llama.cpp.

libgomp prints the settings it read when it loads if `OMP_DISPLAY_ENV=VERBOSE` is set, so
each test reads them from a real process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edge_client.teacher.local import start_local_teacher
from relay_common.embedded import smollm2_path
from relay_common.llama_import import SPIN_ROUNDS

pytestmark = pytest.mark.timeout(240)

RELAY_EDGE = str(Path(sys.executable).with_name("relay-edge"))


def libgomp_spin_rounds(output: str) -> str:
    """GOMP_SPINCOUNT as libgomp printed it at load (once per process)."""
    found = re.findall(r"^\s*GOMP_SPINCOUNT = '(\d+)'", output, re.MULTILINE)
    assert len(found) == 1, f"libgomp printed its settings {len(found)} times:\n{output}"
    return found[0]


def displaying_env(**extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("RELAY_", "OMP_", "GOMP_"))
    }
    return env | {"OMP_DISPLAY_ENV": "VERBOSE"} | extra


def test_the_student_process_spins_briefly(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("")  # hermetic: no user config file applies
    env = displaying_env(RELAY_LEDGER_PATH=str(tmp_path / "ledger.db"), RELAY_CONFIG=str(config))
    done = subprocess.run(
        [RELAY_EDGE, "ask", "Hi", "--teacher-free", "--max-tokens", "2", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert libgomp_spin_rounds(done.stderr) == str(SPIN_ROUNDS)


def test_the_local_teacher_process_spins_briefly(monkeypatch) -> None:
    # The teacher sets it for itself (as one started by hand does): not through the edge's
    # environment, which keeps no trace of the setting.
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setenv("OMP_DISPLAY_ENV", "VERBOSE")
    with start_local_teacher(model=smollm2_path(), timeout_s=200) as teacher:
        log = teacher.log_path.read_text(errors="replace")
    assert libgomp_spin_rounds(log) == str(SPIN_ROUNDS)


def test_llama_cpp_imported_plainly_spins_long() -> None:
    """What the project's import avoids: libgomp's own 300,000 rounds (about 8 ms a wait)."""
    done = subprocess.run(
        [sys.executable, "-c", "import llama_cpp"],
        env=displaying_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert libgomp_spin_rounds(done.stderr) == "300000"


PROBE = (
    "import os, relay_common.llama_import; "
    "print('left in the environment:', os.environ.get('GOMP_SPINCOUNT'))"
)


def test_the_setting_stays_out_of_child_processes() -> None:
    """Children (vLLM's engine, compilers) get the environment as the user left it."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=displaying_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert libgomp_spin_rounds(done.stderr) == str(SPIN_ROUNDS)
    assert "left in the environment: None" in done.stdout


@pytest.mark.parametrize(
    ("setting", "spin_rounds"),
    [({"GOMP_SPINCOUNT": "5000"}, "5000"), ({"OMP_WAIT_POLICY": "ACTIVE"}, "30000000000")],
)
def test_a_users_own_setting_wins(setting: dict[str, str], spin_rounds: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=displaying_env(**setting),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert libgomp_spin_rounds(done.stderr) == spin_rounds
    assert f"left in the environment: {setting.get('GOMP_SPINCOUNT')}" in done.stdout
