"""relay-teacher: the cloud side of relay decoding. It continues a student's partial answer
for `n` tokens (a teacher span) and serves that over gRPC (relay.v1).

    cli.py          `relay-teacher serve`: flags → settings → server; errors as one line
    settings.py     TeacherSettings: flags, RELAY_TEACHER_* environment, TOML file
    server.py       create_server (relay.v1 + health + reflection), serve: start, drain, stop
    interceptors.py the one place domain errors become gRPC status codes; who is calling
    keys.py         API keys (hashed, constant-time checks, reloadable) and the caller's tenant
    quota.py        per-caller limits: concurrent calls, teacher tokens per minute
    service.py      the TeacherService servicer: wire ⇄ domain, nothing more
    requests.py     SpanRequest: the wire request, validated once
    teacher.py      Teacher: admission, idempotency and accounting around an engine
    sessions.py     SessionBook: usage per session and tenant, the bounded replay cache
    stop_strings.py StopScanner: a base model's next turn ends the span
    spans.py        the records of a span: Piece, SpanEnd, Span, SpanUsage
    errors.py       the exception tree
    engines/        base.Engine contract; registry (lazy, by name); llama_cpp (CPU);
                    slots (the slot pool with session affinity)

    gRPC client ─▶ interceptors ─▶ service ─▶ Teacher ─▶ SessionBook
                                                  └────▶ Engine ─▶ slots ─▶ GgufModel threads
"""
