"""A router file and its scoring, numpy only: what the edge needs to route.

    router = RouterModel.load("router.npz")
    router.check_student(fingerprint=student.fingerprint, hidden_size=student.hidden_size)
    score = router.score(hidden)        # P(the student's next token goes wrong), 0..1
    score = router.score(hidden, entropy=entropy(logits))   # a router with_entropy

The file is a NumPy `.npz`: dense layers `weight_0`, `bias_0`, `weight_1`, ... (float16;
ReLU between layers, a sigmoid after the last; training's input scaling and batch norms are
folded into them) and `meta`, one JSON string: the student it was trained for (tokenizer
fingerprint, hidden size, model name), whether the student's next-token entropy is an input
too, and its provenance (data, counts, AUC, calibration, the command that built it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_client.errors import ConfigError

FORMAT = "relay-router/1"


@dataclass(frozen=True, slots=True)
class RouterMeta:
    student_fingerprint: str  # the student's tokenizer fingerprint (relay_common/fingerprint)
    hidden_size: int  # the width of the student's final hidden state
    student_model: str  # the student's model name, for people (not checked)
    provenance: dict[str, Any] = field(default_factory=dict)
    # True: the student's next-token entropy (nats) is an input after the hidden state.
    with_entropy: bool = False

    @property
    def inputs(self) -> int:
        return self.hidden_size + int(self.with_entropy)


@dataclass(frozen=True, slots=True)
class DenseLayer:
    weight: npt.NDArray[np.float32]  # [inputs, outputs]
    bias: npt.NDArray[np.float32]  # [outputs]


class RouterModel:
    """An MLP over the student's final hidden state: the probability that the student's own
    next token goes wrong (where the teacher should write)."""

    def __init__(self, layers: Sequence[DenseLayer], meta: RouterMeta, *, digest: str = "") -> None:
        if not layers or layers[-1].weight.shape[1] != 1:
            raise ValueError("a router's last layer has one output")
        if layers[0].weight.shape[0] != meta.inputs:
            raise ValueError("a router's first layer takes the student's hidden state")
        self.layers = [
            DenseLayer(np.asarray(layer.weight, np.float32), np.asarray(layer.bias, np.float32))
            for layer in layers
        ]
        self.meta = meta
        self.digest = digest  # the file's SHA-256, first 16 hex digits, once loaded

    def score(self, hidden: npt.NDArray[np.floating], *, entropy: float | None = None) -> float:
        """The router's score of one hidden state (and the entropy, for a router
        `with_entropy`), as the relay asks at every token.

        Einsum on the vector, not `@`: a matrix product goes to BLAS, whose threads
        (OpenBLAS's, above a small size) spin on the cores the student decodes on (see
        policies/uncertainty). For a 128-wide layer this costs about 0.2 ms here."""
        values = np.asarray(hidden, dtype=np.float32)
        if self.meta.with_entropy:
            if entropy is None:
                raise ValueError("this router reads the student's entropy too: pass entropy=")
            values = np.append(values, np.float32(entropy))
        for index, layer in enumerate(self.layers):
            values = np.einsum("i,io->o", values, layer.weight) + layer.bias
            if index < len(self.layers) - 1:
                np.maximum(values, 0.0, out=values)
        return float(_sigmoid(values[0]))

    def scores(
        self,
        hidden: npt.NDArray[np.floating],
        *,
        entropy: npt.NDArray[np.floating] | None = None,
    ) -> npt.NDArray[np.float32]:
        """Scores of many hidden states [n, H] (and entropies [n]) at once (offline)."""
        values = np.asarray(hidden, dtype=np.float32)
        if self.meta.with_entropy:
            if entropy is None:
                raise ValueError("this router reads the student's entropy too: pass entropy=")
            column = np.asarray(entropy, dtype=np.float32)[:, np.newaxis]
            values = np.concatenate([values, column], axis=1)
        for index, layer in enumerate(self.layers):
            values = values @ layer.weight + layer.bias
            if index < len(self.layers) - 1:
                np.maximum(values, 0.0, out=values)
        return _sigmoid(values[:, 0]).astype(np.float32)

    def check_student(self, *, fingerprint: str, hidden_size: int, name: str = "") -> None:
        """Raises ConfigError when this router was built for another student."""
        student = f"the student {name}" if name else "the student"
        if fingerprint != self.meta.student_fingerprint:
            raise ConfigError(
                f"the router was trained for {self.meta.student_model or 'another student'} "
                f"(tokenizer {self.meta.student_fingerprint[:12]}), not {student} "
                f"(tokenizer {fingerprint[:12]}); train one for it with `relay-edge router "
                "collect` and `relay-edge router train`"
            )
        if hidden_size != self.meta.hidden_size:
            raise ConfigError(
                f"the router was trained for {self.meta.student_model or 'another student'} "
                f"(hidden size {self.meta.hidden_size}), not {student} (hidden size "
                f"{hidden_size}); train one for it with `relay-edge router collect` and "
                "`relay-edge router train`"
            )

    # -- the file -------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        arrays: dict[str, npt.NDArray[Any]] = {}
        for index, layer in enumerate(self.layers):
            arrays[f"weight_{index}"] = layer.weight.astype(np.float16)
            arrays[f"bias_{index}"] = layer.bias.astype(np.float16)
        meta = {"format": FORMAT, **_meta_dict(self.meta)}
        arrays["meta"] = np.array(json.dumps(meta))
        with path.open("wb") as out:
            np.savez(out, **arrays)

    @classmethod
    def load(cls, path: Path) -> RouterModel:
        """Reads a router file; ConfigError names what is wrong with it."""
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            with np.load(path, allow_pickle=False) as arrays:
                meta = json.loads(str(arrays["meta"]))
                layers = []
                while f"weight_{len(layers)}" in arrays:
                    index = len(layers)
                    layers.append(DenseLayer(arrays[f"weight_{index}"], arrays[f"bias_{index}"]))
        except FileNotFoundError as exc:
            raise ConfigError(
                f"router file not found: {path}; give a file made by `relay-edge router train`"
            ) from exc
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(
                f"{path} is not a router file ({exc}); give one made by `relay-edge router train`"
            ) from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ConfigError(
                f"{path} is not a router file of this version ({FORMAT}); train it again"
            )
        try:
            router_meta = RouterMeta(
                student_fingerprint=str(meta["student_fingerprint"]),
                hidden_size=int(meta["hidden_size"]),
                student_model=str(meta.get("student_model", "")),
                provenance=dict(meta.get("provenance", {})),
                with_entropy=bool(meta.get("with_entropy", False)),
            )
            return cls(layers, router_meta, digest=digest)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path} is not a usable router file ({exc})") from exc


def _sigmoid(values: Any) -> Any:
    """1 / (1 + e^-x) without overflow for large |x|."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(values, dtype=np.float32)))


def _meta_dict(meta: RouterMeta) -> dict[str, Any]:
    return {
        "student_fingerprint": meta.student_fingerprint,
        "hidden_size": meta.hidden_size,
        "student_model": meta.student_model,
        "with_entropy": meta.with_entropy,
        "provenance": meta.provenance,
    }
