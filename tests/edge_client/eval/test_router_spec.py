"""`router:τ[:K]` in `relay-edge eval`: parsing, cost matching, and the router it needs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from edge_client.cli.evaluate import run_eval
from edge_client.errors import ConfigError
from edge_client.eval.plan import plan_settings
from edge_client.eval.records import RecordLog
from edge_client.policies.registry import PolicyName
from edge_client.policies.router import RouterPolicy
from edge_client.router.model import DenseLayer, RouterMeta, RouterModel
from edge_client.settings import EdgeSettings

DATASET = Path(__file__).parent / "data" / "gsm8k_test_sample.jsonl"
SETTINGS = EdgeSettings(span=8, max_span=64, min_gap=3, ledger_path="unused.db")
ROUTER = RouterModel(
    [DenseLayer(np.zeros((4, 1), np.float32), np.zeros(1, np.float32))],
    RouterMeta(student_fingerprint="f" * 64, hidden_size=4, student_model="test"),
)


def test_router_settings_parse_with_and_without_a_span():
    plan = plan_settings(["router:0.30", "router:0.5:4", "random~router:0.3"], SETTINGS)
    assert [(s.key, s.policy, s.span, s.value) for s in plan] == [
        ("router:0.3", PolicyName.ROUTER, 8, 0.3),
        ("router:0.5:4", PolicyName.ROUTER, 4, 0.5),
        ("random~router:0.3", PolicyName.RANDOM, 8, None),
    ]
    assert plan[2].matched_to == "router:0.3"
    assert plan[0].family == "router"


def test_the_random_setting_matches_router_settings_too():
    plan = plan_settings(["router:0.3", "random"], SETTINGS)
    assert [s.key for s in plan] == ["router:0.3", "random~router:0.3"]


def test_a_router_setting_builds_the_router_policy_with_its_threshold():
    setting = plan_settings(["router:0.25:4"], SETTINGS)[0]
    policy = setting.build(SETTINGS, rate=None, seed=0, router=ROUTER)
    assert isinstance(policy, RouterPolicy)
    assert (policy.threshold, policy.span, policy.min_gap) == (0.25, 4, 3)
    assert policy.needs_hidden
    with pytest.raises(ConfigError, match="needs a router file"):
        setting.build(SETTINGS, rate=None, seed=0)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("router", "needs a value"),
        ("router:1.5", "between 0 and 1"),
        ("router:x", "is not a number"),
        ("router:0.3:0", "the span must be at least 1"),
    ],
)
def test_bad_router_settings_are_named(spec, message):
    with pytest.raises(ConfigError, match=message):
        plan_settings([spec], SETTINGS)


def test_eval_asks_for_the_router_file_before_loading_the_models(tmp_path):
    settings = EdgeSettings(teacher="127.0.0.1:1", ledger_path=tmp_path / "ledger.db")
    with pytest.raises(ConfigError, match="needs a router file"):
        run_eval(
            settings,
            dataset=DATASET,
            out=tmp_path / "out",
            limit=1,
            specs=["never", "router:0.3"],
            console=Console(file=io.StringIO()),
            err=Console(file=io.StringIO()),
        )


def test_router_settings_can_join_a_run_and_its_router_is_kept(tmp_path):
    RecordLog(tmp_path, options={"span": 8})
    RecordLog(tmp_path, options={"span": 8, "router": "a1"})  # router settings join
    assert json.loads((tmp_path / "run.json").read_text()) == {"span": 8, "router": "a1"}
    with pytest.raises(ConfigError, match="router"):
        RecordLog(tmp_path, options={"span": 8, "router": "b2"})  # another router file
