"""Regenerate `relay_proto/` from `protos/` (the one place generated code comes from).

    python scripts/generate_protos.py            # rewrite relay_proto/relay/...
    python scripts/generate_protos.py --out DIR  # write elsewhere (the drift test does this)

protoc names imports after the proto path (`from relay.v1 import ...`); the generated modules
live inside the `relay_proto` package, so those imports are rewritten to match.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PACKAGE = "relay_proto"
_IMPORT = re.compile(r"^from relay\.(\S+) import", re.MULTILINE)


def generate(out_dir: Path) -> list[Path]:
    """Writes the generated modules under `out_dir` and returns their paths."""
    protos = sorted(p.relative_to(PROTO_ROOT).as_posix() for p in PROTO_ROOT.rglob("*.proto"))
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the messages above")
    written = sorted(p for p in out_dir.rglob("*") if p.suffix in {".py", ".pyi"})
    for path in written:
        text = _IMPORT.sub(rf"from {PACKAGE}.relay.\1 import", path.read_text())
        path.write_text(text)
    packages = {folder for p in written for folder in p.relative_to(out_dir).parents}
    for folder in packages - {Path(".")}:
        (out_dir / folder / "__init__.py").touch()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / PACKAGE)
    written = generate(parser.parse_args().out)
    print(f"wrote {len(written)} files", file=sys.stderr)


if __name__ == "__main__":
    main()
