"""Assembles a relay session from settings: the student, the teacher (remote, local or none),
the policy and the ledger. Front ends (CLI, chat, the HTTP server) open one and render the
events it yields; every event is in the ledger before the front end sees it.

    with open_runtime(settings) as runtime:
        for event in runtime.answer(messages):
            render(event)
        runtime.use_session("conversation-2")          # a server: one session per conversation
        runtime.answer(messages, options=RelayOptions(max_tokens=64))   # this answer's options
"""

from __future__ import annotations

import shutil
import sys
import threading
from collections.abc import Generator, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from edge_client.errors import ConfigError
from edge_client.ledger.store import Ledger
from edge_client.policies.registry import PolicyName, build_policy
from edge_client.relay.events import RelayEvent, TeacherCall
from edge_client.relay.loop import RelayOptions, RelaySession
from edge_client.relay.usage import Usage
from edge_client.router.model import RouterModel
from edge_client.settings import LOCAL_TEACHER, EdgeSettings, channel_security
from edge_client.student.llama_student import LlamaStudent
from edge_client.teacher.address import check_host_exists
from edge_client.teacher.client import TeacherClient, TeacherState
from edge_client.teacher.grpc_client import GrpcTeacherClient
from edge_client.teacher.local import start_local_teacher
from relay_common.chat import ChatMessage
from relay_common.sampling import SamplingParams

# Drafts are token ids: with a teacher in text mode the verify policy's fallback decides.
VERIFY_IN_TEXT_MODE = (
    "note: the teacher runs in text mode (its tokenizer is not the student's), where drafts "
    "cannot be checked; the confidence policy decides where to call it instead of verify"
)


@dataclass(slots=True)
class EdgeRuntime:
    """A session and what it needs, ready to answer."""

    session: RelaySession
    ledger: Ledger
    teacher_label: str  # "HOST:PORT", "local (HOST:PORT)" or "none"
    mode: str | None  # see relay_mode
    policy: str  # the policy's name, as the ledger records it
    cancel: threading.Event
    _teacher: TeacherClient | None
    router: RouterModel | None = None  # loaded when a policy of the session needs it

    @property
    def teacher_state(self) -> TeacherState | None:
        """None for a teacher-free session; OFFLINE while the user switched it off."""
        if self._teacher is None:
            return None
        if self.session.teacher is None:
            return TeacherState.OFFLINE
        return self.session.teacher.state

    @property
    def has_teacher(self) -> bool:
        return self._teacher is not None

    @property
    def notice(self) -> str | None:
        """One line for the user where the session cannot run as asked, else None."""
        if self.session.policy.draft_checks is not None and self.mode == "text":
            return VERIFY_IN_TEXT_MODE
        return None

    def set_online(self, online: bool) -> None:
        """Teacher-free while offline; back to the configured teacher when online."""
        self.session.teacher = self._teacher if online else None

    def use_session(self, session_id: str) -> None:
        """Answers from now on belong to the session `session_id` (a conversation of the HTTP
        server). One the ledger holds goes on where it stopped: its counts, and with them the
        policy's budget. The student's KV cache is shared: `answer` reuses whatever prefix of
        the new prompt it holds."""
        if session_id == self.session.session_id:
            return
        record = self.ledger.session(session_id)
        self.session.session_id = session_id
        self.session.usage = record.usage if record is not None else Usage()

    def answer(
        self, messages: Sequence[ChatMessage], *, options: RelayOptions | None = None
    ) -> Generator[RelayEvent, None, Usage]:
        """The session's answer to `messages`, each event recorded before it is yielded (a
        teacher call together with its span's tokens). `options` replace the settings' for
        this answer (max_tokens, sampling, stop strings). The session enters the ledger with
        its first answer."""
        self.cancel.clear()
        self.ledger.start_session(
            self.session.session_id,
            student_model=self.session.student.model_name,
            teacher=self.teacher_label,
            policy=self.policy,
            mode=self.mode,
        )
        answer = self.session.answer(messages, options=options)
        held: list[RelayEvent] = []
        while True:
            try:
                event = next(answer)
            except StopIteration as done:
                return done.value
            held.append(event)
            if isinstance(event, TeacherCall) and event.received > 0:
                continue  # its span's tokens come next: one transaction for both
            self.ledger.record(self.session.session_id, *held)
            yield from held
            held.clear()


def resolve_teacher(settings: EdgeSettings) -> str | None:
    """The teacher to use: an address, LOCAL_TEACHER, or None for teacher-free."""
    if settings.teacher_free:
        return None
    if settings.teacher is not None:
        return settings.teacher
    # No teacher configured: relay against a local one when the teacher is installed.
    return LOCAL_TEACHER if _relay_teacher_installed() else None


def _relay_teacher_installed() -> bool:
    beside_python = Path(sys.executable).with_name("relay-teacher")
    return beside_python.is_file() or shutil.which("relay-teacher") is not None


@contextmanager
def open_runtime(settings: EdgeSettings, *, needs_router: bool = False) -> Iterator[EdgeRuntime]:
    """Loads the student, connects (or starts) the teacher, opens the ledger; loads the router
    file when the policy (or, with `needs_router`, a later one: eval) routes with it."""
    target = resolve_teacher(settings)
    router = None
    if needs_router or settings.policy is PolicyName.ROUTER:
        router = read_router(settings)  # before the slow part: a bad file fails at once
    # The local teacher is plaintext on loopback without keys; a remote one may not be.
    security = None
    if target not in (None, LOCAL_TEACHER):
        # Before the slow part: a typo in the address or a bad key file fails at once.
        check_host_exists(target)
        security = channel_security(settings)
    with ExitStack() as stack:
        ledger = Ledger(settings.ledger_path)
        stack.callback(ledger.close)
        student = LlamaStudent(
            settings.student,
            n_ctx=settings.n_ctx,
            n_ubatch=1 if settings.exact else settings.n_ubatch,
            n_threads=settings.threads,
        )
        stack.callback(student.close)
        if router is not None:
            router.check_student(
                fingerprint=student.fingerprint,
                hidden_size=student.hidden_size,
                name=student.model_name,
            )
        teacher: TeacherClient | None = None
        label = "none"
        if target == LOCAL_TEACHER:
            local = stack.enter_context(
                start_local_teacher(model=settings.teacher_model, exact=settings.exact)
            )
            target, label = local.address, f"local ({local.address})"
        elif target is not None:
            label = target
        if target is not None:
            client = GrpcTeacherClient(target, settings=settings.teacher_client, security=security)
            stack.callback(client.close)
            teacher = client
        cancel = threading.Event()
        session = RelaySession(
            student=student,
            teacher=teacher,
            policy=build_policy(
                settings.policy,
                span=settings.span,
                max_span=settings.max_span,
                threshold=settings.threshold,
                entropy_bound=settings.entropy_bound,
                min_gap=settings.min_gap,
                budget=settings.budget,
                rate=settings.rate,
                seed=settings.seed,
                accept_prob=settings.accept_prob,
                draft=settings.draft,
                draft_window=settings.draft_window,
                router=router,
            ),
            options=RelayOptions(
                max_tokens=settings.max_tokens,
                sampling=SamplingParams(
                    temperature=settings.temperature, top_p=settings.top_p, seed=settings.seed
                ),
            ),
            cancel=cancel,
        )
        yield EdgeRuntime(
            session=session,
            ledger=ledger,
            teacher_label=label,
            mode=relay_mode(session),
            policy=settings.policy.value,
            cancel=cancel,
            _teacher=teacher,
            router=router,
        )


def read_router(settings: EdgeSettings) -> RouterModel:
    """The router file the settings name (not yet checked against the student)."""
    if settings.router is None:
        raise ConfigError(
            "the router policy needs a router file: give --router PATH (train one with "
            "`relay-edge router collect` and `relay-edge router train`), or --pair "
            "qwen2.5-coder, whose router ships"
        )
    return RouterModel.load(settings.router)


def relay_mode(session: RelaySession) -> str | None:
    """ "token" or "text" (how spans travel), "teacher-free", or None: teacher not reached."""
    if session.teacher is None:
        return "teacher-free"
    token_mode = session.reach_teacher()
    return None if token_mode is None else ("token" if token_mode else "text")


def conversation_start(settings: EdgeSettings) -> list[ChatMessage]:
    """The messages every conversation begins with (the system prompt, if any)."""
    if settings.system_prompt:
        return [ChatMessage("system", settings.system_prompt)]
    return []
