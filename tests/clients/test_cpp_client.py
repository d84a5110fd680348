"""The C++ client (clients/cpp), built with CMake, against a real teacher."""

from __future__ import annotations


def test_the_cpp_client_gets_spans_and_its_checks_hold(cpp_client, run_client, check_client_run):
    session_id = check_client_run(*run_client([str(cpp_client)]))
    assert session_id.startswith("cpp-")


def test_the_cpp_client_without_an_address_prints_its_usage(cpp_client, run):
    done = run([str(cpp_client)])
    assert done.returncode == 2
    assert "usage: relay_client HOST:PORT" in done.stderr
