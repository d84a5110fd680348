"""Assembling a GGUF shipped in parts across packages: real files, tiny parts."""

from __future__ import annotations

import hashlib

import pytest

from relay_common.errors import ModelNotFoundError
from relay_common.model_parts import PartedModel, assemble

HINT = "pip install 'relay-decoding[demo]'"


@pytest.fixture
def part_packages(tmp_path, monkeypatch):
    """Two part packages on sys.path; the first holds parts 2 and 10 (numeric order)."""
    site = tmp_path / "site"
    contents = {("demo_part1", "part2.bin"): b"AB", ("demo_part1", "part10.bin"): b"CD"}
    contents[("demo_part2", "part11.bin")] = b"EF"
    for (package, name), data in contents.items():
        (site / package / "data").mkdir(parents=True, exist_ok=True)
        (site / package / "__init__.py").write_text("")
        (site / package / "data" / name).write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("RELAY_MODEL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def model(sha256: str, packages=("demo_part1", "demo_part2")) -> PartedModel:
    return PartedModel(file_name="demo.gguf", packages=packages, size=6, sha256=sha256)


def test_assembles_once_in_numeric_order(part_packages):
    path = assemble(model(hashlib.sha256(b"ABCDEF").hexdigest()), install_hint=HINT)
    assert path == part_packages / "demo.gguf"
    assert path.read_bytes() == b"ABCDEF"
    path.write_bytes(b"XXXXXX")  # same size: taken as assembled, not joined again
    assert assemble(model("unused"), install_hint=HINT).read_bytes() == b"XXXXXX"


def test_a_wrong_hash_leaves_no_file(part_packages):
    with pytest.raises(ModelNotFoundError, match="not the pinned 6 bytes") as error:
        assemble(model("0" * 64), install_hint=HINT)
    assert HINT in str(error.value)
    assert list(part_packages.iterdir()) == []


def test_a_missing_package_names_the_extra(part_packages):
    with pytest.raises(ModelNotFoundError, match="demo_part3 is not installed") as error:
        assemble(model("0" * 64, packages=("demo_part1", "demo_part3")), install_hint=HINT)
    assert HINT in str(error.value)
