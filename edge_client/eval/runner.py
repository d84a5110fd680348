"""Runs each setting over the items through one relay session (one student, one teacher),
appending a record per answer. Settings run one after another, so a cost-matched random
setting finds the share of the setting it matches already measured."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from edge_client.eval.checking import is_correct
from edge_client.eval.dataset import EvalItem
from edge_client.eval.machine import machine_signature
from edge_client.eval.plan import EvalSetting, matched_rate
from edge_client.eval.records import EvalRecord, RecordLog, teacher_share
from edge_client.relay.events import AnswerFinished, TokensAppended
from edge_client.runtime import EdgeRuntime, conversation_start
from edge_client.settings import EdgeSettings
from relay_common.chat import ChatMessage


def run_settings(
    *,
    runtime: EdgeRuntime,
    settings: EdgeSettings,
    items: Sequence[EvalItem],
    plan: Sequence[EvalSetting],
    log: RecordLog,
    on_record: Callable[[EvalRecord], None] = lambda record: None,
) -> None:
    """Answers every (setting, item) pair `log` does not hold yet."""
    item_ids = [item.item_id for item in items]
    for setting in plan:
        rate = None
        if setting.matched_to is not None:
            rate = matched_rate(
                teacher_share(log.of(setting.matched_to, item_ids)), span=setting.span
            )
        for index, item in enumerate(items):
            if log.has(setting.key, item.item_id):
                continue
            seed = (settings.seed or 0) + index  # each item its own, same on every rerun
            runtime.session.policy = setting.build(
                settings, rate=rate, seed=seed, router=runtime.router
            )
            record = _answer(runtime, item, setting=setting, rate=rate, settings=settings)
            log.append(record)
            on_record(record)


def _answer(
    runtime: EdgeRuntime,
    item: EvalItem,
    *,
    setting: EvalSetting,
    rate: float | None,
    settings: EdgeSettings,
) -> EvalRecord:
    messages = [*conversation_start(settings), ChatMessage("user", item.prompt)]
    text: list[str] = []
    reason = ""
    started = time.perf_counter()
    answer = runtime.answer(messages)
    while True:
        try:
            event = next(answer)
        except StopIteration as done:
            usage = done.value
            break
        if isinstance(event, TokensAppended):
            text.append(event.text)
        elif isinstance(event, AnswerFinished):
            reason = event.reason.value
    response = "".join(text)
    return EvalRecord(
        setting=setting.key,
        item_id=item.item_id,
        correct=is_correct(response, item.reference),
        reference=item.reference,
        text=response,
        finish_reason=reason,
        usage=usage.as_dict(),
        wall_s=round(time.perf_counter() - started, 4),
        rate=rate,
        machine=machine_signature(),
    )
