"""The gRPC face of the teacher: the server (relay.v1 + health + reflection), the servicer
(wire ⇄ domain) and the interceptors (who is calling; domain errors → status codes)."""
