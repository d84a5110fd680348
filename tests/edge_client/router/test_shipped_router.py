"""The router shipped for the Qwen2.5-Coder pair's student: found by --pair, accepted by
that student, used by `relay-edge ask`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_client.pairs import PairName, apply_pair
from edge_client.router.bundled import shipped_router
from edge_client.router.model import RouterModel
from relay_common import qwen_pair
from relay_common.errors import ModelNotFoundError

SHIPPED = shipped_router("qwen2.5-coder-0.5b-instruct.npz")
RELAY_EDGE = str(Path(sys.executable).with_name("relay-edge"))


def test_the_shipped_router_names_its_student_and_provenance():
    router = RouterModel.load(SHIPPED)
    assert router.meta.hidden_size == 896  # Qwen2.5-Coder-0.5B
    assert router.meta.student_model.startswith("qwen2.5-coder-0.5b-instruct")
    provenance = router.meta.provenance
    assert provenance["command"].startswith("relay-edge router train")
    assert provenance["items"] == sum(c["items"] for c in provenance["collections"])
    assert 0.5 < provenance["report"]["auc"] <= 1
    assert SHIPPED.stat().st_size < 1_000_000  # small enough to ship in the package


def test_the_pair_fills_in_its_router():
    flags = {"student": Path("mine.gguf"), "teacher_free": True}
    assert apply_pair(PairName.QWEN25_CODER, flags)["router"] == SHIPPED
    chosen = Path("other.npz")
    assert apply_pair(PairName.QWEN25_CODER, {**flags, "router": chosen})["router"] == chosen


@pytest.mark.timeout(600)
def test_ask_with_the_pair_routes_with_the_shipped_router(tmp_path):
    try:
        qwen_pair.student_path()
    except ModelNotFoundError:
        pytest.skip("the Qwen2.5-Coder pair is not installed (the qwen-pair extra)")
    config = tmp_path / "config.toml"
    config.write_text("")  # hermetic: no user config file applies
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env |= {"RELAY_LEDGER_PATH": str(tmp_path / "ledger.db"), "RELAY_CONFIG": str(config)}
    command = [RELAY_EDGE, "ask", "What is 2 + 3?", "--pair", "qwen2.5-coder"]
    command += ["--policy", "router", "--teacher-free", "--max-tokens", "6", "--json"]
    done = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["usage"]["student_tokens"] == 6
