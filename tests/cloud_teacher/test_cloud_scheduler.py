"""Scheduler: one step = every decoding job's next token, then prompt chunks up to the budget."""

from __future__ import annotations

from cloud_teacher.engines.llama_cpp.scheduler import Scheduler
from cloud_teacher.engines.llama_cpp.span_job import SpanJob


def job(pending: list[int], *, prefilled: bool) -> SpanJob:
    # Planning reads only `pending` and `prefilled`.
    made = SpanJob.__new__(SpanJob)
    made.pending, made.prefilled = pending, prefilled
    return made


def test_decoding_jobs_go_first_then_prompts_fill_the_budget_in_order() -> None:
    decoding = [job([7], prefilled=True), job([8], prefilled=True)]
    long_prompt = job(list(range(100)), prefilled=False)
    later_prompt = job(list(range(5)), prefilled=False)
    chunks = Scheduler(step_tokens=10, one_job_per_step=False).plan(
        [long_prompt, decoding[0], later_prompt, decoding[1]]
    )

    assert [(c.job, c.tokens, c.wants_logits) for c in chunks] == [
        (decoding[0], [7], True),
        (decoding[1], [8], True),
        (long_prompt, list(range(8)), False),  # chunked: the rest comes in later steps
    ]


def test_a_prompt_that_fits_asks_for_logits() -> None:
    short = job([1, 2, 3], prefilled=False)
    other = job([4, 5], prefilled=False)
    chunks = Scheduler(step_tokens=10, one_job_per_step=False).plan([short, other])

    assert [(c.tokens, c.wants_logits) for c in chunks] == [([1, 2, 3], True), ([4, 5], True)]


def test_exact_mode_serves_one_job_per_step_in_turn() -> None:
    jobs = [job([1], prefilled=True), job([2, 3], prefilled=False)]
    scheduler = Scheduler(step_tokens=10, one_job_per_step=True)
    served = [scheduler.plan(jobs) for _ in range(4)]

    assert all(len(chunks) == 1 for chunks in served)
    assert {id(chunks[0].job) for chunks in served} == {id(j) for j in jobs}
