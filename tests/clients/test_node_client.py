"""The Node client (clients/node) and its `node --test` suite, against a real teacher."""

from __future__ import annotations

import re
from pathlib import Path

CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "node"


def test_the_node_client_gets_spans_and_its_checks_hold(node, run_client, check_client_run):
    done, proxy = run_client([node, "relay_client.mjs"], cwd=CLIENT_DIR)
    assert check_client_run(done, proxy).startswith("node-")
    assert "ok: the cancelled stream ends CANCELLED" in done.stdout


def test_the_node_test_suite_passes_against_the_teacher(node, teacher, run):
    done = run([node, "--test"], cwd=CLIENT_DIR, RELAY_TEACHER=teacher.address)
    output = f"{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, output
    # With a teacher given, every test ran: none skipped.
    assert re.search(r"^# fail 0$", done.stdout, re.MULTILINE), output
    assert re.search(r"^# skipped 0$", done.stdout, re.MULTILINE), output
    passed = re.search(r"^# pass (\d+)$", done.stdout, re.MULTILINE)
    assert passed is not None and int(passed[1]) >= 8, output
