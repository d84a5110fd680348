"""Router fixtures: a collection made once with the embedded SmolLM2 as both student and
teacher (one vocabulary, small), on a few arithmetic items."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge_client.eval.dataset import read_items
from edge_client.router.collect import CollectModels, collect
from relay_common.embedded import smollm2_path
from relay_common.gguf import GgufModel

DATA = Path(__file__).parent / "data"
MAX_TOKENS = 64


@pytest.fixture(scope="session")
def smollm2_models() -> Iterator[CollectModels]:
    student = GgufModel(smollm2_path(), n_ctx=512, n_threads=1)
    teacher = GgufModel(smollm2_path(), n_ctx=512, n_threads=1)
    yield CollectModels(student=student, teacher=teacher)
    student.close()
    teacher.close()


@pytest.fixture(scope="session")
def smollm2_collection(
    smollm2_models: CollectModels, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A collection directory of the arithmetic items (SmolLM2 answers some of them right)."""
    directory = tmp_path_factory.mktemp("collection")
    items = read_items(DATA / "arithmetic.jsonl")
    collect(smollm2_models, items, directory=directory, max_tokens=MAX_TOKENS)
    return directory


@pytest.fixture(scope="session")
def smollm2_output_matrix() -> np.ndarray:
    """SmolLM2's output matrix (tied to its token embeddings), dequantized: [vocab, hidden]."""
    gguf = pytest.importorskip("gguf", reason="reading GGUF tensors needs the gguf package")
    reader = gguf.GGUFReader(str(smollm2_path()))
    tensors = {tensor.name: tensor for tensor in reader.tensors}
    tensor = tensors.get("output.weight", tensors["token_embd.weight"])
    return gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
