"""relay-edge: the student side of relay decoding.

    student/   the GGUF student on llama.cpp (StudentEngine)
    policies/  when to call the teacher and for how many tokens (Policy)
    teacher/   the teacher over gRPC: retries, circuit breaker, local teacher (TeacherClient)
    relay/     the relay loop: pure decision logic, yields events, returns usage
    ledger/    durable per-session accounting in SQLite
    cli/       `relay-edge ask | chat | usage`: renders events, nothing else

The edge never imports `cloud_teacher`: it ships alone to devices.
"""
