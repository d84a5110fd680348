"""The chat page of a real `relay-edge serve` (the default pair: SmolLM2 student, a local
Gemma teacher in text mode) in a real headless browser: Debian's chromium driven by
Playwright. A question typed in streams an answer with its teacher spans marked, and the
session's offload ratio and the teacher's state are shown."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edge_client.ledger.store import Ledger
from tests.edge_client.serve.conftest import Served

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Playwright drives the system's browser: nothing is downloaded, nothing reached but loopback.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
_ANSWER_TIMEOUT_MS = 300_000


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    if not Path(CHROMIUM).is_file():
        pytest.skip("no chromium to drive: apt-get install chromium")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def served(serve_process) -> Served:
    # A threshold this high calls the teacher in nearly every answer: spans to mark.
    return serve_process("--threshold", "0.9", "--max-tokens", "40", "--temperature", "0")


def test_the_page_streams_an_answer_with_teacher_spans_marked(browser, served, tmp_path):
    page = browser.new_page()
    # (Not "requestfailed": Chromium reports a fetch read through its body's reader as
    # aborted once read to the end.)
    console_errors: list[str] = []

    def on_console(message) -> None:
        if message.type == "error":
            console_errors.append(message.text)

    page.on("console", on_console)
    page.goto(served.url + "/")
    page.wait_for_function("document.getElementById('model').textContent.includes('mode')")
    assert "text mode" in page.inner_text("#model")
    assert page.inner_text("#teacher-state") == "online"

    page.fill("#question", "Why is the sky blue?")
    page.keyboard.press("Enter")
    # The usage line comes with the last chunk: the answer has streamed to its end.
    page.wait_for_selector(".turn.assistant .meta", timeout=_ANSWER_TIMEOUT_MS)
    page.screenshot(path=str(tmp_path / "chat-page.png"))

    answer = page.locator(".turn.assistant")
    teacher_spans = answer.locator("span.teacher").all_inner_texts()
    assert teacher_spans and all(text for text in teacher_spans)
    assert answer.locator("span.meta").inner_text().startswith("student ")
    offload = page.inner_text("#offload")
    assert offload != "0.0 %" and offload.endswith("%")
    assert page.inner_text("#teacher-state") == "online"
    assert page.inner_text("#error") == ""
    assert console_errors == []

    # The page's conversation is one ledger session; its offload ratio is the one shown.
    with Ledger(served.ledger_path) as ledger:
        [session] = [s for s in ledger.sessions() if s.session_id.startswith("page-")]
    assert f"{100 * session.usage.offload_ratio:.1f} %" == offload
    assert session.usage.teacher_tokens > 0
    page.close()
