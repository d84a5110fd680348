"""`relay-edge chat`: a multi-turn conversation kept in the student's KV cache.

Each answer streams with teacher spans marked; after it, the teacher's state and the
session's offload ratio. Slash commands: /stats /offline /online /reset /quit.
"""

from __future__ import annotations

from contextlib import ExitStack

from rich.console import Console
from rich.table import Table

from edge_client.cli.interrupt import cancel_on_interrupt
from edge_client.cli.render import legend, refusal_note, stream_tokens, usage_line
from edge_client.relay.events import AnswerEndReason, AnswerFinished, TokensAppended
from edge_client.runtime import EdgeRuntime, conversation_start, open_runtime
from edge_client.settings import EdgeSettings
from relay_common.chat import ChatMessage

HELP = "/stats  /offline  /online  /reset  /quit   (Ctrl-C stops an answer)"


class ChatSession:
    """The conversation and its commands; owns no model code, only the runtime's answers."""

    def __init__(self, runtime: EdgeRuntime, settings: EdgeSettings, console: Console) -> None:
        self.runtime = runtime
        self.settings = settings
        self.console = console
        self.messages = conversation_start(settings)
        self._told_refusal = False

    def run(self) -> None:
        self._banner()
        while True:
            try:
                line = self.console.input("[bold green]you>[/] ").strip()
            except EOFError:
                break
            except KeyboardInterrupt:
                self.console.print("\n(use /quit to leave)")
                continue
            if not line:
                continue
            if line.startswith("/"):
                if not self._command(line):
                    break
                continue
            self._answer(line)

    def _command(self, line: str) -> bool:
        """Runs a slash command; False means leave the chat."""
        command = line.split()[0].lower()
        if command in {"/quit", "/exit"}:
            return False
        if command == "/stats":
            self._stats()
        elif command == "/offline":
            self.runtime.set_online(False)
            self.console.print("teacher [red]offline[/]: the student writes every token")
        elif command == "/online":
            if not self.runtime.has_teacher:
                self.console.print("no teacher configured: start with --teacher HOST:PORT")
            else:
                self.runtime.set_online(True)
                self.console.print(f"teacher back on: {self.runtime.teacher_label}")
        elif command == "/reset":
            self.messages = conversation_start(self.settings)
            self.console.print("new conversation")
        else:
            self.console.print(f"unknown command {command}; {HELP}")
        return True

    def _answer(self, text: str) -> None:
        self.messages.append(ChatMessage("user", text))
        self.console.print("[bold blue]relay>[/] ", end="")
        written: list[str] = []
        reason = AnswerEndReason.END_OF_ANSWER
        with cancel_on_interrupt(self.runtime.cancel):
            for event in self.runtime.answer(self.messages):
                if isinstance(event, TokensAppended):
                    written.append(event.text)
                    stream_tokens(self.console, event)
                elif isinstance(event, AnswerFinished):
                    reason = event.reason
        self.console.print()
        if reason is AnswerEndReason.CANCELLED:
            self.console.print("[dim](stopped)[/]")
        elif reason is AnswerEndReason.CONTEXT_FULL:
            self.console.print("[yellow]the conversation fills the context: /reset to go on[/]")
        self.messages.append(ChatMessage("assistant", "".join(written)))
        self.console.print(
            usage_line(self.runtime.session.usage, self.runtime.teacher_state), style="dim"
        )
        note = refusal_note(self.runtime.teacher_state)
        if note is not None and not self._told_refusal:
            self.console.print(note)
            self._told_refusal = True

    def _banner(self) -> None:
        session = self.runtime.session
        self.console.print(
            f"[bold]relay-edge chat[/] · student {session.student.model_name} · "
            f"teacher {self.runtime.teacher_label} ({self.runtime.mode or 'not reached'} mode) · "
            f"policy {self.settings.policy.value}"
        )
        self.console.print(legend())
        if self.runtime.notice:
            self.console.print(self.runtime.notice, style="yellow")
        self.console.print(f"[dim]{HELP}[/]")

    def _stats(self) -> None:
        usage = self.runtime.session.usage
        table = Table(title=f"session {self.runtime.session.session_id}", show_header=False)
        for name, value in usage.as_dict().items():
            table.add_row(name, f"{value:.3f}" if isinstance(value, float) else str(value))
        state = self.runtime.teacher_state
        table.add_row(
            "teacher", f"{self.runtime.teacher_label} ({state.value if state else 'none'})"
        )
        self.console.print(table)


def run_chat(settings: EdgeSettings, *, console: Console) -> None:
    with ExitStack() as stack:
        with console.status("loading the student and connecting the teacher…"):
            runtime = stack.enter_context(open_runtime(settings))
        ChatSession(runtime, settings, console).run()
