"""`relay-edge ask`: one question, the answer streamed (or one JSON object with --json)."""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import asdict

from rich.console import Console

from edge_client.cli.interrupt import cancel_on_interrupt
from edge_client.cli.prompt_input import ensure_prompt_fits
from edge_client.cli.render import join_spans, refusal_note, stream_tokens, usage_line
from edge_client.relay.events import AnswerFinished, TokensAppended
from edge_client.runtime import conversation_start, open_runtime
from edge_client.settings import EdgeSettings
from relay_common.chat import ChatMessage


def run_ask(
    settings: EdgeSettings, prompt: str, *, as_json: bool, out: Console, err: Console
) -> None:
    messages = [*conversation_start(settings), ChatMessage("user", prompt)]
    with ExitStack() as stack:
        with err.status("loading the student and connecting the teacher…"):
            runtime = stack.enter_context(open_runtime(settings))
        ensure_prompt_fits(runtime.session.student, messages, n_ctx=settings.n_ctx)
        if runtime.notice:
            err.print(runtime.notice, style="yellow")
        tokens: list[TokensAppended] = []
        finished: AnswerFinished | None = None
        with cancel_on_interrupt(runtime.cancel):
            answer = runtime.answer(messages)
            for event in answer:
                if isinstance(event, TokensAppended):
                    tokens.append(event)
                    if not as_json:
                        stream_tokens(out, event)
                elif isinstance(event, AnswerFinished):
                    finished = event
        usage = runtime.session.usage
        if as_json:
            result = {
                "text": "".join(event.text for event in tokens),
                "session_id": runtime.session.session_id,
                "finish_reason": finished.reason.value if finished else None,
                "teacher": runtime.teacher_label,
                "usage": usage.as_dict(),
                "spans": [asdict(span) for span in join_spans(tokens)],
            }
            # Plain write: rich would wrap long strings and break the JSON.
            out.file.write(json.dumps(result, ensure_ascii=False) + "\n")
        else:
            out.print()
            out.file.flush()  # the answer's last line before the usage line on stderr
            err.print(usage_line(usage, runtime.teacher_state), style="dim")
        note = refusal_note(runtime.teacher_state)
        if note is not None:
            err.print(note)
