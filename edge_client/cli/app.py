"""The `relay-edge` command line: flags map onto EdgeSettings; known errors print one line."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from edge_client.cli.ask import run_ask
from edge_client.cli.chat import run_chat
from edge_client.cli.evaluate import run_eval
from edge_client.cli.prompt_input import read_prompt
from edge_client.cli.router import run_collect, run_show, run_train
from edge_client.cli.usage_view import print_usage
from edge_client.errors import ConfigError, EdgeError
from edge_client.eval.plan import DEFAULT_SPECS
from edge_client.ledger.store import Ledger
from edge_client.pairs import PairName, apply_pair
from edge_client.policies.registry import PolicyName
from edge_client.router.training import TrainOptions
from edge_client.serve.settings import ServeSettings
from edge_client.settings import EdgeSettings, load_settings
from relay_common.errors import RelayCommonError

app = typer.Typer(
    help="Relay decoding on the edge: a small GGUF student that asks a cloud teacher for the "
    "spans it is unsure of, and goes on alone when the teacher is unreachable.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _help(name: str, *, table: str | None = None) -> str:
    """A flag's help: the setting's description and default, so the two never disagree.
    `table` names a nested settings table (serve)."""
    model = ServeSettings if table == "serve" else EdgeSettings
    field = model.model_fields[name]
    default = field.get_default(call_default_factory=False)
    shown = getattr(default, "value", default)
    notes = [f"env RELAY_{table.upper() + '__' if table else ''}{name.upper()}"]
    if shown not in (None, False) and not field.default_factory:
        notes.insert(0, f"default {shown}")
    return f"{field.description} ({'; '.join(notes)})"


def _option(name: str, *flags: str, table: str | None = None) -> typer.models.OptionInfo:
    return typer.Option(*flags, help=_help(name, table=table), show_default=False)


Teacher = Annotated[str | None, _option("teacher")]
TeacherFree = Annotated[bool | None, _option("teacher_free", "--teacher-free")]
Exact = Annotated[bool | None, _option("exact", "--exact")]
TeacherModel = Annotated[Path | None, _option("teacher_model")]
Student = Annotated[Path | None, _option("student")]
Policy = Annotated[PolicyName | None, _option("policy")]
Threshold = Annotated[float | None, _option("threshold")]
Router = Annotated[Path | None, _option("router")]
Threads = Annotated[int | None, _option("threads")]
Span = Annotated[int | None, _option("span")]
MinGap = Annotated[int | None, _option("min_gap")]
Budget = Annotated[int | None, _option("budget")]
Rate = Annotated[float | None, _option("rate")]
AcceptProb = Annotated[float | None, _option("accept_prob")]
Draft = Annotated[int | None, _option("draft")]
DraftWindow = Annotated[int | None, _option("draft_window")]
MaxTokens = Annotated[int | None, _option("max_tokens")]
Temperature = Annotated[float | None, _option("temperature")]
TopP = Annotated[float | None, _option("top_p")]
Seed = Annotated[int | None, _option("seed")]
System = Annotated[str | None, _option("system_prompt", "--system")]
ApiKeyFile = Annotated[Path | None, _option("api_key_file")]
Tls = Annotated[bool | None, _option("tls", "--tls")]
TlsCa = Annotated[Path | None, _option("tls_ca")]
TlsCert = Annotated[Path | None, _option("tls_cert")]
TlsKey = Annotated[Path | None, _option("tls_key")]
Pair = Annotated[
    PairName | None,
    typer.Option(
        help="A student/teacher pair of one family: sets --student and a local teacher's "
        "model (qwen2.5-coder: pip install 'relay-decoding[qwen-pair]')."
    ),
]
EntropyBound = Annotated[float | None, _option("entropy_bound")]
Config = Annotated[
    Path | None, typer.Option(help="TOML config file (default: RELAY_CONFIG or the user's one).")
]
Host = Annotated[str | None, _option("host", table="serve")]
Port = Annotated[int | None, _option("port", table="serve")]
ServeApiKeyFile = Annotated[
    Path | None, _option("api_key_file", "--serve-api-key-file", table="serve")
]
AllowInsecure = Annotated[bool | None, _option("allow_insecure", "--allow-insecure", table="serve")]
Queue = Annotated[int | None, _option("queue", table="serve")]
Grace = Annotated[float | None, _option("grace_s", "--grace", table="serve")]


def takes_options_of(
    source: Callable[..., None],
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Gives a command every flag of `source` after its own; the command receives them in its
    `**flags`. `serve` takes `chat`'s this way, so a flag added to `chat` reaches `serve` too.

        @app.command()
        @takes_options_of(chat)
        def serve(port: Port = None, **flags: Any) -> None: ...
    """

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = inspect.signature(command, eval_str=True)
        parameters = [p for p in own.parameters.values() if p.kind is not p.VAR_KEYWORD]
        names = {p.name for p in parameters}
        parameters += [
            p
            for p in inspect.signature(source, eval_str=True).parameters.values()
            if p.name not in names
        ]

        @functools.wraps(command)
        def with_options(**values: Any) -> None:
            command(**values)

        # typer reads the signature and the annotations: both list every flag.
        with_options.__signature__ = own.replace(parameters=parameters)  # type: ignore[attr-defined]
        with_options.__annotations__ = {p.name: p.annotation for p in parameters}
        return with_options

    return decorate


@app.command()
def ask(
    prompt: Annotated[str, typer.Argument(help="The question; - reads it from standard input.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object: text, usage, spans.")
    ] = False,
    teacher: Teacher = None,
    teacher_free: TeacherFree = None,
    teacher_model: TeacherModel = None,
    exact: Exact = None,
    student: Student = None,
    policy: Policy = None,
    threshold: Threshold = None,
    router: Router = None,
    entropy_bound: EntropyBound = None,
    span: Span = None,
    min_gap: MinGap = None,
    budget: Budget = None,
    rate: Rate = None,
    accept_prob: AcceptProb = None,
    draft: Draft = None,
    draft_window: DraftWindow = None,
    max_tokens: MaxTokens = None,
    temperature: Temperature = None,
    top_p: TopP = None,
    seed: Seed = None,
    system: System = None,
    api_key_file: ApiKeyFile = None,
    tls: Tls = None,
    tls_ca: TlsCa = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    pair: Pair = None,
    config: Config = None,
) -> None:
    """Answer one question, streaming the answer (teacher spans highlighted)."""
    settings = _settings(locals())
    question = _guarded(lambda: read_prompt(prompt, stdin=sys.stdin))
    _guarded(lambda: run_ask(settings, question, as_json=as_json, out=_OUT, err=_ERR))


@app.command()
def chat(
    teacher: Teacher = None,
    teacher_free: TeacherFree = None,
    teacher_model: TeacherModel = None,
    exact: Exact = None,
    student: Student = None,
    policy: Policy = None,
    threshold: Threshold = None,
    router: Router = None,
    entropy_bound: EntropyBound = None,
    span: Span = None,
    min_gap: MinGap = None,
    budget: Budget = None,
    rate: Rate = None,
    accept_prob: AcceptProb = None,
    draft: Draft = None,
    draft_window: DraftWindow = None,
    max_tokens: MaxTokens = None,
    temperature: Temperature = None,
    top_p: TopP = None,
    seed: Seed = None,
    system: System = None,
    api_key_file: ApiKeyFile = None,
    tls: Tls = None,
    tls_ca: TlsCa = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    pair: Pair = None,
    config: Config = None,
) -> None:
    """Chat with the student; it relays to the teacher where it is unsure."""
    settings = _settings(locals())
    _guarded(lambda: run_chat(settings, console=_OUT))


@app.command()
@takes_options_of(chat)
def serve(
    host: Host = None,
    port: Port = None,
    serve_api_key_file: ServeApiKeyFile = None,
    allow_insecure: AllowInsecure = None,
    queue: Queue = None,
    grace: Grace = None,
    **flags: Any,
) -> None:
    """Serve relay decoding behind an OpenAI-compatible API (/v1) and a chat page (/).

    Takes every student, teacher and policy flag of `chat`."""
    own = {
        "host": host,
        "port": port,
        "api_key_file": serve_api_key_file,
        "allow_insecure": allow_insecure,
        "queue": queue,
        "grace_s": grace,
    }
    given = {name: value for name, value in own.items() if value is not None}
    settings = _settings({**flags, "serve": given or None})
    _guarded(lambda: _run_server(settings))


def _run_server(settings: EdgeSettings) -> None:
    try:
        from edge_client.serve.server import run_server
    except ImportError as exc:
        if exc.name not in _SERVE_PACKAGES:
            raise
        raise ConfigError(
            f"relay-edge serve needs the package {exc.name}: pip install 'relay-decoding[serve]'"
        ) from exc
    run_server(settings, out=_OUT)


_SERVE_PACKAGES = {"uvicorn", "starlette", "sse_starlette"}


@app.command(name="eval")
def evaluate(
    dataset: Annotated[
        Path, typer.Option(help="JSONL: GSM8K (question, answer '... #### N') or prompt/answer.")
    ],
    out: Annotated[Path, typer.Option(help="Output directory; a rerun with the same one resumes.")],
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N items.")] = None,
    setting: Annotated[
        list[str] | None,
        typer.Option(
            help="A setting to run (repeatable): never, teacher, always[:K], confidence:θ, "
            "entropy:B and router:τ (each with an optional :K span), step:B, verify:P[:K[:D]] "
            "(K: --span, D: --draft), random[:P], command; random~S: the cost-matched random "
            "of setting S alone. "
            "Default: " + " ".join(DEFAULT_SPECS)
        ),
    ] = None,
    teacher: Teacher = None,
    teacher_model: TeacherModel = None,
    student: Student = None,
    router: Router = None,
    span: Span = None,
    draft: Draft = None,
    min_gap: MinGap = None,
    max_tokens: MaxTokens = None,
    seed: Seed = None,
    system: System = None,
    pair: Pair = None,
    config: Config = None,
    redo_fallbacks: Annotated[
        bool,
        typer.Option(
            help="Answer again the recorded answers that had fallback spans (the teacher was "
            "late or away); the new record replaces the old."
        ),
    ] = False,
) -> None:
    """Measure relay quality: accuracy against the share of teacher tokens, per setting."""
    settings = _settings(locals())
    _guarded(
        lambda: run_eval(
            settings,
            dataset=dataset,
            out=out,
            limit=limit,
            specs=setting or [],
            redo_fallbacks=redo_fallbacks,
            console=_OUT,
            err=_ERR,
        )
    )


router_app = typer.Typer(
    help="CITER's learned router: collect teacher-forced positions, train the MLP, show one.",
    no_args_is_help=True,
)
app.add_typer(router_app, name="router")


@router_app.command(name="collect")
def router_collect(
    dataset: Annotated[
        Path, typer.Option(help="Training items, JSONL (GSM8K train: question, answer).")
    ],
    out: Annotated[Path, typer.Option(help="Collection directory; a rerun resumes it.")],
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N items.")] = None,
    student: Student = None,
    teacher_model: TeacherModel = None,
    max_tokens: MaxTokens = None,
    threads: Threads = None,
    pair: Pair = None,
    config: Config = None,
) -> None:
    """Collect training positions: the teacher's right answers, read by both models."""
    settings = _settings(locals())
    _guarded(lambda: run_collect(settings, dataset=dataset, out=out, limit=limit, err=_ERR))


@router_app.command(name="train")
def router_train(
    directories: Annotated[
        list[Path], typer.Argument(help="Directories made by `router collect` (one student).")
    ],
    out: Annotated[Path, typer.Option(help="The router file to write (.npz).")],
    hidden: Annotated[
        str,
        typer.Option(
            help="Hidden layer widths, comma-separated (CITER's: 2H,H, e.g. 1792,896 for a "
            "896-wide student)."
        ),
    ] = "128",
    with_entropy: Annotated[
        bool,
        typer.Option(
            "--with-entropy",
            help="Give the MLP the student's next-token entropy too, beside its hidden state.",
        ),
    ] = False,
    accept_prob: Annotated[
        float,
        typer.Option(
            min=0,
            max=1,
            help="Also count the student right where the teacher gives its token at least "
            "this probability (0: CITER's labels).",
        ),
    ] = 0.0,
    holdout: Annotated[
        float, typer.Option(min=0.05, max=0.5, help="Share of the items held out.")
    ] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the split and the training.")] = 0,
    threads: Annotated[int | None, typer.Option(min=1, help="torch's CPU threads.")] = None,
) -> None:
    """Train the router on CPU (the router-train extra): held-out AUC, calibration."""
    options = TrainOptions(
        hidden_sizes=_guarded(lambda: _widths(hidden)),
        with_entropy=with_entropy,
        accept_prob=accept_prob,
        holdout=holdout,
        seed=seed,
        threads=threads,
    )
    _guarded(lambda: run_train(directories, out=out, options=options, console=_OUT, err=_ERR))


@router_app.command(name="show")
def router_show(
    path: Annotated[Path, typer.Argument(help="A router file.")],
) -> None:
    """Print a router's student, layers and provenance as JSON."""
    _guarded(lambda: run_show(path, console=_OUT))


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise ConfigError(f"--hidden {text!r}: give layer widths such as 128 or 1792,896")
    return widths


@app.command()
def usage(
    session: Annotated[str | None, typer.Option(help="Only this session.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: Config = None,
) -> None:
    """Token accounting per session, from the ledger."""
    settings = _settings({"config": config})

    def show() -> None:
        ledger = Ledger(settings.ledger_path)
        try:
            print_usage(ledger, session_id=session, as_json=as_json, console=_OUT)
        finally:
            ledger.close()

    _guarded(show)


T = TypeVar("T")
_OUT = Console(highlight=False)
# soft_wrap: a message stays one line however narrow the terminal (or a pipe's 80 columns).
_ERR = Console(stderr=True, highlight=False, soft_wrap=True)


_NOT_SETTINGS = {"prompt", "as_json", "dataset", "out", "limit", "setting", "redo_fallbacks"}


def _settings(flags: dict[str, object]) -> EdgeSettings:
    flags = {name: value for name, value in flags.items() if name not in _NOT_SETTINGS}
    config = flags.pop("config")
    pair = flags.pop("pair", None)
    if "system" in flags:
        flags["system_prompt"] = flags.pop("system")
    return _guarded(
        lambda: load_settings(config_file=config, **apply_pair(pair, flags))  # type: ignore[arg-type]
    )


def _guarded(action: Callable[[], T]) -> T:
    """Runs `action`; a known error prints one line (what is wrong, what to do) and exits
    non-zero. Anything unexpected is not swallowed."""
    try:
        return action()
    except ConfigError as exc:
        _ERR.print(Text.assemble(("error: ", "red"), str(exc)))
        raise typer.Exit(2) from exc
    except (EdgeError, RelayCommonError) as exc:
        _ERR.print(Text.assemble(("error: ", "red"), str(exc)))
        raise typer.Exit(1) from exc


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
