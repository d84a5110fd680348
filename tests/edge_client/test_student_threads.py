"""The student's thread count: llama.cpp's defaults unless the `threads` setting gives one."""

from __future__ import annotations

from pathlib import Path

from edge_client.runtime import open_runtime
from edge_client.settings import EdgeSettings
from edge_client.student.llama_student import LlamaStudent
from relay_common.gguf import usable_cores


def test_the_threads_setting_reaches_llama_cpp(tmp_path: Path) -> None:
    settings = EdgeSettings(teacher_free=True, threads=1, ledger_path=tmp_path / "ledger.db")
    with open_runtime(settings) as runtime:
        llama = runtime.session.student.model.llama
        assert (llama.n_threads, llama.n_threads_batch) == (1, 1)


def test_without_it_prompts_use_every_usable_core() -> None:
    student = LlamaStudent(n_ctx=256)
    try:
        assert student.model.llama.n_threads_batch == usable_cores()
    finally:
        student.close()
