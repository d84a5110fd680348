"""`relay-edge serve`: relay decoding behind an OpenAI-compatible HTTP API, with a chat page.

    settings.py     ServeSettings: host, port, API keys, queue, shutdown grace ([serve] table)
    keys.py         ApiKeys: the keys clients must present (constant-time check)
    worker.py       AnswerWorker: the thread that owns the runtime (student, teacher, ledger);
                    one answer at a time, a bounded queue, cancellation, drain on shutdown
    requests.py     ChatRequest: an OpenAI chat-completions request, validated once
    answer_text.py  AnswerText: what the client sees of an answer, cut at a stop string
    shapes.py       OpenAI's response, chunk, usage and error objects (plus `relay` fields)
    errors.py       ApiError: an HTTP status with OpenAI's error JSON
    app.py          create_app: the Starlette routes (/v1/models, /v1/chat/completions,
                    /health, the page at /)
    server.py       run_server: binds, loads, serves with uvicorn, drains on SIGTERM
    static/         the chat page (plain HTML, CSS and JavaScript: works offline)

It is a front end like `ask` and `chat`: the same runtime, relay loop and ledger; it renders
the loop's events as server-sent events. Its packages are the `serve` extra
(`pip install 'relay-decoding[serve]'`); nothing here is imported by `ask` or `chat`.
"""
