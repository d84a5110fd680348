"""The relay loop and what it reports: pure logic over the student, teacher and policy
interfaces (no llama.cpp, gRPC or SQLite imports here)."""
