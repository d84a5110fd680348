"""The committed generated code is exactly what the .proto files generate (no drift)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "relay_proto"


def _generate(out_dir: Path) -> list[Path]:
    spec = importlib.util.spec_from_file_location(
        "generate_protos", ROOT / "scripts" / "generate_protos.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate(out_dir)


def test_generated_code_matches_the_protos(tmp_path: Path) -> None:
    _generate(tmp_path)
    generated = {
        p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()
    }
    committed = {
        p.relative_to(COMMITTED): p.read_bytes()
        for p in (COMMITTED / "relay").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }

    assert generated, "generate_protos.py wrote nothing"
    assert sorted(generated) == sorted(committed), "files differ: run scripts/generate_protos.py"
    stale = [str(path) for path, text in generated.items() if committed[path] != text]
    assert not stale, f"stale generated code: {stale}; run scripts/generate_protos.py"
