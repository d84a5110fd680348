"""relay-teacher: the cloud side of relay decoding. It continues a student's partial answer
for `n` tokens (a teacher span) and serves that over gRPC (relay.v1).

    cli.py          `relay-teacher serve`: flags → settings → server; errors as one line
    settings.py     TeacherSettings: flags, RELAY_TEACHER_* environment, TOML file
    errors.py       the exception tree
    rpc/            the gRPC face: server (relay.v1 + health + reflection; start, drain,
                    stop), service (wire ⇄ domain), interceptors (who is calling; domain
                    errors → gRPC status codes, in one place)
    access/         auth and limits: keys (hashed, constant-time, reloadable; the caller's
                    tenant), quota (concurrent calls, teacher tokens per minute)
    metrics/        Prometheus: collectors and endpoint, the interceptor that counts calls
    teacher.py      Teacher: admission, idempotency and accounting around an engine
    requests.py     SpanRequest: the wire request, validated once
    sessions.py     SessionBook: usage per session and tenant, the bounded replay cache
    spans.py        the records of a span: Piece, SpanEnd, Span, SpanUsage
    engines/        base.Engine contract; registry (lazy, by name); span_writer (shared);
                    llama_cpp/ (CPU, continuous batching); vllm/ (GPU, or its CPU build)

    gRPC client ─▶ rpc.interceptors ─▶ rpc.service ─▶ Teacher ─▶ SessionBook
                                                         └────▶ Engine (llama_cpp/ or vllm/)
"""
