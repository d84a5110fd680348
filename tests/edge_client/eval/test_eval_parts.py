"""Datasets, the settings plan, cost matching and the summary's statistics."""

from __future__ import annotations

import json

import pytest

from edge_client.errors import ConfigError, DatasetError
from edge_client.eval.dataset import INSTRUCTION, read_items
from edge_client.eval.plan import matched_rate, plan_settings
from edge_client.eval.records import EvalRecord, RecordLog
from edge_client.eval.summary import summarize, wilson_interval
from edge_client.policies.registry import PolicyName
from edge_client.relay.usage import Usage
from edge_client.settings import EdgeSettings

SETTINGS = EdgeSettings(span=8, max_span=64, ledger_path="unused.db")


def test_reads_gsm8k_and_generic_items(tmp_path):
    path = tmp_path / "items.jsonl"
    lines = [
        {"question": "How many?", "answer": "2 + 2 = 4\n#### 1,004"},
        {"prompt": "Simplify 2/4.", "answer": "\\frac{1}{2}"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    first, second = read_items(path)
    assert first.reference == "1004" and first.prompt == f"How many?\n{INSTRUCTION}"
    assert second.reference == "\\frac{1}{2}" and second.item_id == "2"
    assert len(read_items(path, limit=1)) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json\n", "items.jsonl:1: not valid JSON"),
        ('{"question": "q"}\n', "expected `question` and `answer`"),
        ("[1, 2]\n", "expected a JSON object"),
        ("\n", "holds no items"),
    ],
)
def test_bad_datasets_are_named(tmp_path, content, message):
    path = tmp_path / "items.jsonl"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message):
        read_items(path)


def test_missing_dataset(tmp_path):
    with pytest.raises(DatasetError, match="cannot read the dataset"):
        read_items(tmp_path / "absent.jsonl")


def test_plan_expands_cost_matched_random_after_its_sources():
    plan = plan_settings(
        ["never", "teacher", "random", "confidence:0.40", "entropy:2:32", "step:1.5", "always"],
        SETTINGS,
    )
    assert [s.key for s in plan] == [
        "never",
        "teacher",
        "confidence:0.4",
        "entropy:2:32",
        "step:1.5",
        "always:8",
        "random~confidence:0.4",
        "random~entropy:2:32",
        "random~step:1.5",
    ]
    teacher = plan[1]
    assert teacher.policy is PolicyName.ALWAYS and teacher.span == 64
    assert [s.span for s in plan[2:5]] == [8, 32, 64]  # a step is capped by max_span
    assert plan[-1].matched_to == "step:1.5" and plan[-1].span == 64


def test_plan_matches_random_to_the_settings_named():
    plan = plan_settings(
        ["random~entropy:2.0", "confidence:0.4", "entropy:2", "step:1.5"], SETTINGS
    )
    assert [s.key for s in plan] == ["confidence:0.4", "entropy:2", "step:1.5", "random~entropy:2"]
    assert plan[-1].matched_to == "entropy:2" and plan[-1].span == 8
    both = plan_settings(["random", "random~step:1.5", "step:1.5"], SETTINGS)
    assert [s.key for s in both] == ["step:1.5", "random~step:1.5"]


def test_plan_names_verify_settings_in_full_and_matches_their_cost():
    plan = plan_settings(["verify:0.1", "verify:0.30:1:16", "random~verify:0.1"], SETTINGS)
    assert [s.key for s in plan] == ["verify:0.1:8:32", "verify:0.3:1:16", "random~verify:0.1:8:32"]
    first, second, random = plan
    assert (first.policy, first.value, first.span, first.draft) == (PolicyName.VERIFY, 0.1, 8, 32)
    assert (second.span, second.draft) == (1, 16)
    policy = second.build(SETTINGS, rate=None, seed=0)
    assert policy.draft_checks is not None
    assert (policy.draft_checks.accept_prob, policy.draft_checks.draft) == (0.3, 16)
    assert policy.draft_checks.span == 1
    assert random.matched_to == "verify:0.1:8:32" and random.span == 8


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["bogus"], "unknown setting 'bogus'"),
        (["confidence"], "needs a value"),
        (["confidence:1.5"], "between 0 and 1"),
        (["entropy:x"], "is not a number"),
        (["never:3"], "takes no value"),
        (["random"], "matches the cost"),
        (["random~entropy:2", "entropy:1"], "random~entropy:2 .* must run too"),
        (["random~never", "never"], "be a confidence, entropy, step, router or verify"),
        (["verify"], "write verify:P"),
        (["verify:0.1:1:32:4"], "write verify:P"),
        (["verify:2"], "between 0 and 1"),
        (["verify:0.1:0"], "at least 1"),
        (["verify:0.1:1:x"], "is not a number"),
        (["never", "never"], "named twice"),
        (["always:0"], "at least 1"),
        (["random:0.1:4"], "takes its span from --span"),
        (["step:1.5:32"], "a step ends at its line break.*write step:1.5"),
    ],
)
def test_bad_settings_are_named(specs, message):
    with pytest.raises(ConfigError, match=message):
        plan_settings(specs, SETTINGS)


@pytest.mark.parametrize("share", [0.01, 0.05, 0.2, 0.9])
def test_matched_rate_gives_the_share_back(share):
    span = 8
    rate = matched_rate(share, span=span)
    assert rate * span / (rate * span + 1 - rate) == pytest.approx(share)
    assert matched_rate(0.0, span=span) == 0.0


def test_wilson_interval():
    low, high = wilson_interval(7, 30)  # the student's 7/30 on GSM8K
    assert low == pytest.approx(0.1179, abs=1e-3) and high == pytest.approx(0.4093, abs=1e-3)
    assert wilson_interval(0, 5)[0] == pytest.approx(0.0, abs=1e-12)
    assert wilson_interval(5, 5)[1] == pytest.approx(1.0)


def record(setting: str, item: str, *, fallback_spans: int = 0) -> EvalRecord:
    usage = {"teacher_tokens": 1, "student_tokens": 3, "fallback_spans": fallback_spans}
    return EvalRecord(setting, item, True, "4", "\\boxed{4}", "end_of_answer", usage, 0.5)


def test_the_summary_gives_the_read_share_beside_the_generated_one():
    plan = plan_settings(["never", "verify:0.1:1:32"], SETTINGS)
    older = Usage(student_tokens=3, teacher_tokens=1).as_dict()
    for newer in ("draft_tokens", "rejected_draft_tokens", "read_ratio"):
        del older[newer]  # a record made before drafts were counted
    read = Usage(student_tokens=98, teacher_tokens=2, draft_tokens=130).as_dict()
    records = {
        "never": [EvalRecord("never", "1", True, "4", "4", "end_of_answer", older, 1.0)],
        "verify:0.1:1:32": [
            EvalRecord("verify:0.1:1:32", "1", True, "4", "4", "end_of_answer", read, 2.0)
        ],
    }
    never, verified = summarize(plan, records)
    assert (never.teacher_read_ratio, never.teacher_token_ratio) == (0.0, 0.25)
    assert verified.teacher_token_ratio == pytest.approx(0.02)
    assert verified.teacher_read_ratio == pytest.approx(1.3)


def test_record_log_survives_a_cut_line_and_refuses_other_options(tmp_path):
    log = RecordLog(tmp_path, options={"span": 8})
    log.append(record("never", "1"))
    with (tmp_path / "records.jsonl").open("a") as out:
        out.write('{"setting": "never", "item_id": "2", "corr')  # killed mid-write
    reopened = RecordLog(tmp_path, options={"span": 8})
    assert reopened.has("never", "1") and not reopened.has("never", "2")
    assert reopened.of("never", ["1", "2"]) == [record("never", "1")]
    with pytest.raises(ConfigError, match="span: 8 → 4"):
        RecordLog(tmp_path, options={"span": 4})


def test_answers_with_fallback_spans_run_again_only_when_asked(tmp_path):
    log = RecordLog(tmp_path, options={"span": 8})
    log.append(record("always:8", "1", fallback_spans=1))
    log.append(record("always:8", "2"))
    assert log.has("always:8", "1") and log.fell_back("always:8", "1")

    redo = RecordLog(tmp_path, options={"span": 8}, redo_fallbacks=True)
    assert not redo.has("always:8", "1") and redo.has("always:8", "2")
    redo.append(record("always:8", "1"))
    # The later record wins, in this log and in the next one read from the file.
    assert RecordLog(tmp_path, options={"span": 8}, redo_fallbacks=True).of(
        "always:8", ["1", "2"]
    ) == [record("always:8", "1"), record("always:8", "2")]
