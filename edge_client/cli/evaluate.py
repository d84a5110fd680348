"""`relay-edge eval`: runs the settings over a dataset (resumable), then writes
DIR/summary.json and DIR/accuracy_vs_teacher_tokens.png and prints the table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from edge_client.errors import ConfigError
from edge_client.eval.dataset import read_items
from edge_client.eval.machine import UNRECORDED
from edge_client.eval.plan import DEFAULT_SPECS, EvalSetting, plan_settings
from edge_client.eval.plot import INSTALL_HINT, plotting_available, write_plot
from edge_client.eval.records import RecordLog
from edge_client.eval.runner import run_settings
from edge_client.eval.summary import SettingSummary, summarize
from edge_client.policies.registry import PolicyName
from edge_client.runtime import VERIFY_IN_TEXT_MODE, open_runtime, read_router, resolve_teacher
from edge_client.settings import EdgeSettings

PLOT_NAME = "accuracy_vs_teacher_tokens.png"


def run_eval(
    settings: EdgeSettings,
    *,
    dataset: Path,
    out: Path,
    limit: int | None,
    specs: Sequence[str],
    console: Console,
    err: Console,
    redo_fallbacks: bool = False,
) -> None:
    items = read_items(dataset, limit=limit)
    plan = plan_settings(list(specs or DEFAULT_SPECS), settings)
    _check_teacher(plan, settings)
    options = _run_options(settings, dataset=dataset)
    routes = any(s.policy is PolicyName.ROUTER for s in plan)
    if routes:  # a missing or bad router file fails here, before the models load
        options["router"] = read_router(settings).digest
    log = RecordLog(out, options=options, redo_fallbacks=redo_fallbacks)
    if not plotting_available():
        err.print(f"note: no plot without matplotlib ({INSTALL_HINT})", style="yellow")
    item_ids = [item.item_id for item in items]
    pending = sum(not log.has(s.key, item) for s in plan for item in item_ids)
    if pending:
        err.print(f"answers to run: {pending}; recorded: {len(plan) * len(items) - pending}")
        with ExitStack() as stack:
            with err.status("loading the student and connecting the teacher…"):
                runtime = stack.enter_context(open_runtime(settings, needs_router=routes))
            if runtime.mode == "text" and any(s.policy is PolicyName.VERIFY for s in plan):
                err.print(VERIFY_IN_TEXT_MODE, style="yellow")
            progress = stack.enter_context(
                Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeRemainingColumn(),
                    console=err,
                )
            )
            task = progress.add_task("eval", total=pending)
            run_settings(
                runtime=runtime,
                settings=settings,
                items=items,
                plan=plan,
                log=log,
                on_record=lambda record: progress.update(
                    task, advance=1, description=f"{record.setting} #{record.item_id}"
                ),
            )
    records_of = {s.key: log.of(s.key, item_ids) for s in plan}
    summaries = summarize(plan, records_of)
    machines = sorted(
        {record.machine or UNRECORDED for records in records_of.values() for record in records}
    )
    summary = {
        "dataset": str(dataset),
        "items": len(items),
        "machines": machines,
        "settings": [summary.as_dict() for summary in summaries],
    }
    (out / "summary.json").write_text(
        json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    if plotting_available():
        write_plot(summaries, out / PLOT_NAME, title=f"{dataset.name}, {len(items)} items")
    # In a pipe rich assumes 80 columns, which folds every cell: print it whole there.
    wide = console if console.is_terminal else Console(file=console.file, width=160)
    wide.print(_table(summaries))
    fell_back = sum(log.fell_back(s.key, item) for s in plan for item in item_ids)
    if fell_back:
        err.print(
            f"answers with fallback spans: {fell_back}. The student wrote what the teacher did "
            "not deliver in time. Give the teacher a longer deadline "
            "(RELAY_TEACHER_CLIENT__DEADLINE_S) and rerun with --redo-fallbacks.",
            style="yellow",
        )
    if len(machines) > 1:
        err.print(
            f"these answers were made on {len(machines)} machines ({'; '.join(machines)}). "
            "Greedy answers differ from one CPU to another, so settings compare item by item "
            "only where one machine answered both: run the settings you compare on one "
            "machine, with an --out of their own.",
            style="yellow",
        )
    err.print(f"summary: {out / 'summary.json'}", style="dim")


def _check_teacher(plan: Sequence[EvalSetting], settings: EdgeSettings) -> None:
    if resolve_teacher(settings) is not None:
        return
    calling = [s.key for s in plan if s.policy is not PolicyName.NEVER]
    if calling:
        raise ConfigError(
            f"settings {', '.join(calling)} call a teacher, and none is configured; give "
            "--teacher HOST:PORT or --teacher local, or run only --setting never"
        )


def _run_options(settings: EdgeSettings, *, dataset: Path) -> dict[str, object]:
    """What the records depend on: a resumed run must use the same."""
    return {
        "dataset": str(dataset.resolve()),
        "student": str(settings.student) if settings.student else "embedded",
        "teacher": resolve_teacher(settings),
        "teacher_model": str(settings.teacher_model) if settings.teacher_model else None,
        **settings.model_dump(
            include={"span", "max_span", "min_gap", "max_tokens", "temperature", "top_p", "seed"}
        ),
        "system_prompt": settings.system_prompt,
    }


def _table(summaries: Sequence[SettingSummary]) -> Table:
    table = Table(title="relay quality")
    for column in ("setting", "n", "accuracy [95 % CI]", "teacher tok", "read", "gap recovered"):
        table.add_column(column, justify="left" if column == "setting" else "right")
    for column in ("calls/answer", "student tok/s", "teacher tok/s", "fallbacks", "wall s"):
        table.add_column(column, justify="right")
    for s in summaries:
        table.add_row(
            s.setting,
            str(s.items),
            f"{100 * s.accuracy:.1f} % [{100 * s.accuracy_low:.1f}, {100 * s.accuracy_high:.1f}]",
            f"{100 * s.teacher_token_ratio:.2f} %",
            f"{100 * s.teacher_read_ratio:.0f} %",
            "" if s.gap_recovered is None else f"{100 * s.gap_recovered:.0f} %",
            f"{s.calls_per_answer:.2f}",
            f"{s.student_tokens_per_s:.1f}",
            f"{s.teacher_tokens_per_s:.1f}",
            str(s.fallback_spans),
            f"{s.wall_s:.1f}",
        )
    return table
