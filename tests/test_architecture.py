"""The boundaries DESIGN §2 and the house style draw, checked on the source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(package: str) -> dict[Path, set[str]]:
    found: dict[Path, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        found[path.relative_to(ROOT)] = names
    return found


def offending(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path}: {name}"
        for path, names in imported_modules(package).items()
        for name in sorted(names)
        if name.split(".")[0] in forbidden
    ]


def test_the_edge_never_imports_the_teacher():
    assert offending("edge_client", ("cloud_teacher",)) == []


@pytest.mark.parametrize("package", ["relay_common", "relay_proto"])
def test_shared_packages_import_neither_side(package):
    assert offending(package, ("edge_client", "cloud_teacher")) == []


def test_the_relay_loop_and_policies_are_pure():
    """Not even indirectly do they load llama.cpp, gRPC or SQLite (checked in a fresh
    interpreter, where nothing else has imported them)."""
    probe = (
        "import sys, edge_client.relay.loop, edge_client.policies.registry; "
        "print(sorted({'llama_cpp', 'grpc', 'sqlite3'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_only_the_vllm_engine_imports_vllm():
    """vLLM is an optional extra: the registry imports its engine module only when chosen."""
    importers = [
        hit
        for package in ("edge_client", "cloud_teacher", "relay_common", "relay_proto")
        for hit in offending(package, ("vllm",))
    ]
    assert importers
    assert {hit.split(":")[0] for hit in importers} == {"cloud_teacher/engines/vllm/engine.py"}


def test_llama_cpp_is_imported_only_through_llama_import():
    """libgomp reads its spin setting once, when llama_cpp first loads: only
    relay_common/llama_import.py may load it, with that setting in place."""
    importers = [
        hit
        for package in ("edge_client", "cloud_teacher", "relay_common", "benchmarks")
        for hit in offending(package, ("llama_cpp",))
    ]
    assert {hit.split(":")[0] for hit in importers} == {"relay_common/llama_import.py"}
