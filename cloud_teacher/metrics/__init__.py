"""Prometheus metrics: the collectors and their endpoint (`collectors`), and the interceptor
that counts every call (`interceptor`)."""
