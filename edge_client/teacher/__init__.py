"""The teacher as the edge sees it: a `TeacherClient`, over gRPC in production.

    client.py       the TeacherClient Protocol and its records (what the relay loop uses)
    grpc_client.py  GrpcTeacherClient: deadlines, retries, error mapping, breaker state
    breaker.py      the circuit breaker (injected clock)
    settings.py     TeacherClientSettings: deadlines, attempts, budget, back-off, breaker
    wire.py         records to and from relay.v1 messages
    address.py      "HOST:PORT" checking
    channel.py      the gRPC channel: TLS, client certificate, API key metadata
    local.py        start a relay-teacher process for the session

Only grpc_client.py, channel.py and local.py touch gRPC or processes; the loop sees the Protocol.
"""
