"""deploy/ fixtures: the dev extra's command-line tools and `kubectl kustomize`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

Kustomize = Callable[[Path], list[dict[str, Any]]]


def _find_tool(name: str) -> str:
    """A dev-extra tool beside this Python (the same virtual environment) first, then PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; install the test tools: pip install -e '.[dev]'")
    return found


@pytest.fixture(scope="session")
def find_tool() -> Callable[[str], str]:
    return _find_tool


@pytest.fixture(scope="session")
def kustomize_text() -> Callable[[Path], str]:
    """What `kubectl kustomize FOLDER` prints."""
    kubectl = _find_tool("kubectl")

    def build(folder: Path) -> str:
        built = subprocess.run(
            [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120
        )
        assert built.returncode == 0, f"kubectl kustomize {folder} failed:\n{built.stderr}"
        return built.stdout

    return build


@pytest.fixture(scope="session")
def kustomize(kustomize_text) -> Kustomize:
    """The objects `kubectl kustomize FOLDER` builds."""
    return lambda folder: [doc for doc in yaml.safe_load_all(kustomize_text(folder)) if doc]
