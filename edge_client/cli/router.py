"""`relay-edge router collect | train | show`: the learned router's offline steps. They only
render; the work is in edge_client/router/."""

from __future__ import annotations

import json
import math
import shlex
import sys
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from edge_client.errors import ConfigError
from edge_client.eval.dataset import read_items
from edge_client.router.collect import (
    META_NAME,
    CollectModels,
    ItemOutcome,
    check_collection,
    check_pair,
    collect,
    collection_meta,
)
from edge_client.router.model import RouterModel
from edge_client.router.positions import PositionStore
from edge_client.router.training import TrainOptions, TrainReport, train_router
from edge_client.settings import EdgeSettings
from relay_common.embedded import smollm2_path
from relay_common.gguf import GgufModel


def command_line() -> str:
    """How this command was called, for a file's provenance."""
    return shlex.join(["relay-edge", *sys.argv[1:]])


def run_collect(
    settings: EdgeSettings,
    *,
    dataset: Path,
    out: Path,
    limit: int | None,
    err: Console,
) -> None:
    items = read_items(dataset, limit=limit)
    if settings.teacher_model is None:
        raise ConfigError(
            "collecting needs the teacher's GGUF file: give --teacher-model PATH (a model of "
            "the student's family) or --pair qwen2.5-coder"
        )
    with ExitStack() as stack:
        with err.status("loading the student and the teacher…"):
            student = GgufModel(
                settings.student or smollm2_path(),
                n_ctx=settings.n_ctx,
                n_threads=settings.threads,
            )
            stack.callback(student.close)
            teacher = GgufModel(
                settings.teacher_model, n_ctx=settings.n_ctx, n_threads=settings.threads
            )
            stack.callback(teacher.close)
        models = CollectModels(student=student, teacher=teacher)
        check_pair(models)
        meta = collection_meta(models, dataset=dataset, max_tokens=settings.max_tokens)
        check_collection(out, {**meta, "command": command_line()})
        progress = stack.enter_context(
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err,
            )
        )
        task = progress.add_task("collect", total=len(items))

        def advance(outcome: ItemOutcome) -> None:
            progress.update(task, advance=1, description=f"#{outcome.item_id} {outcome.status}")

        outcomes = collect(
            models, items, directory=out, max_tokens=settings.max_tokens, on_item=advance
        )
    statuses = Counter(outcome.status for outcome in outcomes)
    stored = PositionStore(out).item_ids()
    err.print(
        f"{len(items)} items: "
        + ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
        + f"; {len(stored)} items with positions in {out}"
    )


def run_train(
    directories: Sequence[Path],
    *,
    out: Path,
    options: TrainOptions,
    console: Console,
    err: Console,
) -> None:
    """Trains on the positions of one or more collections of one student."""
    collections = [_read_collection(directory) for directory in directories]
    student = collections[0]
    for directory, collection in zip(directories, collections, strict=True):
        if (collection["student_fingerprint"], collection["hidden_size"]) != (
            student["student_fingerprint"],
            student["hidden_size"],
        ):
            raise ConfigError(
                f"{directory} was collected for another student ({collection['student']}) "
                f"than {directories[0]} ({student['student']}); train on one student's data"
            )
    with err.status("loading the positions…"):
        items = [item for directory in directories for item in PositionStore(directory).load_all()]
        for collection, directory in zip(collections, directories, strict=True):
            collection["items"] = len(PositionStore(directory).item_ids())
    with err.status(f"training on {len(items)} items…"):
        result = train_router(
            items,
            options=options,
            student_fingerprint=student["student_fingerprint"],
            student_model=student["student"],
            provenance={
                "collections": collections,
                "items": len(items),
                "command": command_line(),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )
    try:
        result.router.save(out)
    except OSError as exc:
        raise ConfigError(f"cannot write the router to {out}: {exc}") from exc
    print_report(result.report, console=console)
    err.print(f"router: {out}", style="dim")


def _read_collection(directory: Path) -> dict[str, Any]:
    path = directory / META_NAME
    try:
        collection = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{directory} holds no collection ({META_NAME} is missing); run "
            "`relay-edge router collect --out DIR` first"
        ) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(collection, dict) or "student_fingerprint" not in collection:
        raise ConfigError(f"{path} is not a collection's description; collect again")
    return collection


def run_show(path: Path, *, console: Console) -> None:
    router = RouterModel.load(path)
    widths = [layer.weight.shape[1] for layer in router.layers]
    summary = {
        "student_model": router.meta.student_model,
        "student_fingerprint": router.meta.student_fingerprint,
        "hidden_size": router.meta.hidden_size,
        "with_entropy": router.meta.with_entropy,
        "layers": " -> ".join(str(width) for width in [router.meta.inputs, *widths]),
        "sha256": router.digest,
        "provenance": router.meta.provenance,
    }
    console.file.write(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")


def print_report(report: TrainReport, *, console: Console) -> None:
    console.print(
        f"items: {report.items_train} trained on, {report.items_holdout} held out "
        f"({report.positions_train} + {report.positions_holdout} positions); labelled "
        f"teacher: {100 * report.teacher_share:.1f} % ({report.neither_right} where neither "
        f"model matched the reference); epochs: {report.epochs}"
    )
    console.print(
        f"held-out AUC: router {report.auc:.3f}, the student's entropy {report.auc_entropy:.3f};"
        f" calibration error {report.calibration_error:.3f}"
    )
    calibration = Table(title="calibration (held out)")
    for column in ("score", "positions", "mean score", "labelled teacher"):
        calibration.add_column(column, justify="right")
    for row in report.calibration:
        calibration.add_row(
            f"{row.low:.1f}-{row.high:.1f}",
            str(row.count),
            f"{row.mean_score:.3f}",
            f"{row.observed:.3f}",
        )
    console.print(calibration)
    thresholds = Table(title="calls by threshold τ (held out, before any teacher span)")
    for column in ("τ", "call rate", "precision", "recall"):
        thresholds.add_column(column, justify="right")
    for row in report.thresholds:
        thresholds.add_row(
            f"{row.threshold:.1f}",
            f"{100 * row.call_rate:.2f} %",
            _percent(row.precision),
            _percent(row.recall),
        )
    console.print(thresholds)


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f} %"
