"""Trains a router on collected positions with torch on CPU (the `router-train` extra).

CITER's MLP is H -> 2H -> H -> 1 with batch norm, ReLU and dropout 0.1 and a sigmoid
(`hidden_sizes=(2H, H)`); a single narrow layer (the default) ranks about as well here and
costs a fraction of it at each token. Items, not positions, are split into training and
held-out sets (positions of one answer resemble each other): the held-out set stops
training early and gives the figures the router ships with.

    result = train_router(store.load_all(), options=TrainOptions())
    result.router.save(Path("router.npz"))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_client.errors import ConfigError
from edge_client.router.labels import count_labels, teacher_labels
from edge_client.router.metrics import CalibrationBin, auc, calibration
from edge_client.router.model import DenseLayer, RouterMeta, RouterModel
from edge_client.router.positions import ItemPositions

INSTALL_HINT = "pip install 'relay-decoding[router-train]'"
REPORTED_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True, slots=True)
class TrainOptions:
    hidden_sizes: tuple[int, ...] = (128,)
    with_entropy: bool = False  # the student's entropy as an input beside the hidden state
    accept_prob: float = 0.0  # labels.teacher_labels
    holdout: float = 0.2  # share of the items held out
    dropout: float = 0.1
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    max_epochs: int = 100
    patience: int = 5  # epochs without a better held-out loss before stopping
    seed: int = 0
    threads: int | None = None


@dataclass(frozen=True, slots=True)
class ThresholdRow:
    threshold: float
    call_rate: float  # share of held-out positions scored above it
    precision: float  # share of those labelled "teacher"
    recall: float  # share of the "teacher" positions scored above it


@dataclass(frozen=True, slots=True)
class TrainReport:
    items_train: int
    items_holdout: int
    positions_train: int
    positions_holdout: int
    teacher_share: float  # labelled "teacher", all positions
    neither_right: int  # "teacher" positions where the teacher missed the reference too
    epochs: int
    auc: float  # the router, held out (as shipped: float16 weights, numpy)
    auc_entropy: float  # the student's entropy as the score, the same positions
    calibration_error: float
    calibration: list[CalibrationBin] = field(default_factory=list)
    thresholds: list[ThresholdRow] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TrainResult:
    router: RouterModel
    report: TrainReport


def train_router(
    items: Sequence[ItemPositions],
    *,
    options: TrainOptions,
    student_fingerprint: str,
    student_model: str,
    provenance: dict[str, Any] | None = None,
) -> TrainResult:
    """Trains, evaluates on the held-out items and folds the model into a RouterModel whose
    provenance holds `provenance`, the options and the report."""
    torch = _import_torch()
    if len(items) < 2:
        raise ConfigError(
            f"{len(items)} collected item(s): training needs at least 2 (one held out); "
            "collect more items"
        )
    train_items, held_items = split_items(items, holdout=options.holdout, seed=options.seed)
    x_train, y_train = _stack(train_items, options=options)
    x_held, y_held = _stack(held_items, options=options)
    if len(set(y_train.tolist())) < 2:
        raise ConfigError(
            "the training positions are all labelled alike: the student and the teacher "
            "agree everywhere; collect more items or use a stronger teacher"
        )
    torch.manual_seed(options.seed)
    if options.threads:
        torch.set_num_threads(options.threads)
    mean = x_train.mean(axis=0)
    scale = np.maximum(x_train.std(axis=0), 1e-6)
    hidden_size = x_train.shape[1] - int(options.with_entropy)
    network = _network(torch, hidden_size, options)
    epochs = _fit(
        torch,
        network,
        (x_train - mean) / scale,
        y_train,
        (x_held - mean) / scale,
        y_held,
        options=options,
    )
    layers = _fold(torch, network, mean=mean, scale=scale, hidden_size=hidden_size)
    draft = RouterModel(
        layers,
        RouterMeta(
            student_fingerprint, hidden_size, student_model, with_entropy=options.with_entropy
        ),
    )
    # Round-trip through the file's float16 so the figures are those of what ships.
    shipped = [
        DenseLayer(layer.weight.astype(np.float16), layer.bias.astype(np.float16))
        for layer in draft.layers
    ]
    entropies = np.concatenate([item.entropy for item in held_items]).astype(np.float32)
    scores = RouterModel(shipped, draft.meta).scores(
        x_held[:, :hidden_size], entropy=entropies if options.with_entropy else None
    )
    bins, error = calibration(scores, y_held)
    counts = count_labels(list(items), accept_prob=options.accept_prob)
    report = TrainReport(
        items_train=len(train_items),
        items_holdout=len(held_items),
        positions_train=len(y_train),
        positions_holdout=len(y_held),
        teacher_share=counts.teacher_share,
        neither_right=counts.neither_right,
        epochs=epochs,
        auc=auc(scores, y_held),
        auc_entropy=auc(entropies, y_held),
        calibration_error=error,
        calibration=bins,
        thresholds=[_threshold_row(scores, y_held, t) for t in REPORTED_THRESHOLDS],
    )
    meta = RouterMeta(
        student_fingerprint=student_fingerprint,
        hidden_size=hidden_size,
        student_model=student_model,
        with_entropy=options.with_entropy,
        provenance={
            **(provenance or {}),
            "options": asdict(options),
            "report": report.as_dict(),
            "label_rule": _label_rule(options.accept_prob),
        },
    )
    return TrainResult(router=RouterModel(draft.layers, meta), report=report)


def split_items(
    items: Sequence[ItemPositions], *, holdout: float, seed: int
) -> tuple[list[ItemPositions], list[ItemPositions]]:
    """A seeded split of whole items: about `holdout` of them held out, at least one each."""
    order = np.random.default_rng(seed).permutation(len(items))
    held = min(max(1, round(holdout * len(items))), len(items) - 1)
    held_set = set(order[:held].tolist())
    return (
        [item for index, item in enumerate(items) if index not in held_set],
        [item for index, item in enumerate(items) if index in held_set],
    )


def _label_rule(accept_prob: float) -> str:
    rule = "student right -> student; else teacher right -> teacher; else teacher (no rollout)"
    if accept_prob > 0:
        rule += f"; the student is also right where the teacher gives its token >= {accept_prob}"
    return rule


def _stack(
    items: Sequence[ItemPositions], *, options: TrainOptions
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The inputs (hidden states, then the entropy when it is one) and labels of `items`."""
    inputs = np.concatenate([item.hidden for item in items]).astype(np.float32)
    if options.with_entropy:
        entropy = np.concatenate([item.entropy for item in items]).astype(np.float32)
        inputs = np.concatenate([inputs, entropy[:, np.newaxis]], axis=1)
    labels = np.concatenate(
        [teacher_labels(item, accept_prob=options.accept_prob) for item in items]
    )
    return inputs, labels.astype(np.float32)


def _threshold_row(
    scores: npt.NDArray[np.float32], labels: npt.NDArray[np.float32], threshold: float
) -> ThresholdRow:
    called = scores > threshold
    positives = labels.astype(bool)
    return ThresholdRow(
        threshold=threshold,
        call_rate=float(called.mean()) if len(called) else 0.0,
        precision=float(positives[called].mean()) if called.any() else math.nan,
        recall=float(called[positives].mean()) if positives.any() else math.nan,
    )


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ConfigError(f"training a router needs torch: {INSTALL_HINT}") from exc
    return torch


def _network(torch: Any, hidden_size: int, options: TrainOptions) -> Any:
    """The MLP over the hidden state; with the entropy, plus a linear term in it (a "wide"
    path: with little data the MLP alone learns to lean on one input of hundreds poorly)."""
    nn = torch.nn
    layers: list[Any] = []
    width = hidden_size
    for size in options.hidden_sizes:
        layers += [
            nn.Linear(width, size),
            nn.BatchNorm1d(size),
            nn.ReLU(),
            nn.Dropout(options.dropout),
        ]
        width = size
    layers.append(nn.Linear(width, 1))

    class Router(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.deep = nn.Sequential(*layers)
            self.wide = nn.Linear(1, 1) if options.with_entropy else None

        def forward(self, inputs: Any) -> Any:
            out = self.deep(inputs[:, :hidden_size])
            if self.wide is not None:
                out = out + self.wide(inputs[:, hidden_size:])
            return out

    return Router()


def _fit(
    torch: Any,
    network: Any,
    x_train: npt.NDArray[np.float32],
    y_train: npt.NDArray[np.float32],
    x_held: npt.NDArray[np.float32],
    y_held: npt.NDArray[np.float32],
    *,
    options: TrainOptions,
) -> int:
    """Adam on binary cross-entropy, stopped when the held-out loss has not improved for
    `patience` epochs; leaves the network at its best epoch. Returns the epochs run.

    With the entropy's linear path, that path is fitted alone first and the MLP starts at
    zero output: training begins from a logistic regression on the entropy and keeps the
    MLP only where it lowers the held-out loss."""
    inputs, targets = torch.from_numpy(x_train), torch.from_numpy(y_train)
    held_inputs, held_targets = torch.from_numpy(x_held), torch.from_numpy(y_held)
    loss_of = torch.nn.BCEWithLogitsLoss()
    if network.wide is not None:
        _fit_wide(torch, network, inputs, targets, loss_of=loss_of)
    optimizer = torch.optim.Adam(
        network.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay
    )
    generator = torch.Generator().manual_seed(options.seed)
    best_loss, best_state, stale, epoch = math.inf, None, 0, 0
    if network.wide is not None:
        network.eval()
        with torch.no_grad():
            best_loss = float(loss_of(network(held_inputs).squeeze(1), held_targets))
        best_state = {key: value.clone() for key, value in network.state_dict().items()}
    for epoch in range(1, options.max_epochs + 1):  # noqa: B007 (the count is returned)
        network.train()
        order = torch.randperm(len(inputs), generator=generator)
        for start in range(0, len(order), options.batch_size):
            batch = order[start : start + options.batch_size]
            if len(batch) < 2:  # batch norm needs two rows
                continue
            optimizer.zero_grad()
            loss = loss_of(network(inputs[batch]).squeeze(1), targets[batch])
            loss.backward()
            optimizer.step()
        network.eval()
        with torch.no_grad():
            held_loss = float(loss_of(network(held_inputs).squeeze(1), held_targets))
        if held_loss < best_loss - 1e-5:
            best_loss, stale = held_loss, 0
            best_state = {key: value.clone() for key, value in network.state_dict().items()}
        else:
            stale += 1
            if stale >= options.patience:
                break
    if best_state is not None:
        network.load_state_dict(best_state)
    network.eval()
    return epoch


def _fit_wide(torch: Any, network: Any, inputs: Any, targets: Any, *, loss_of: Any) -> None:
    """Fits the entropy's linear path alone (full batch) and zeroes the MLP's output layer."""
    last = network.deep[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    entropy = inputs[:, -1:]
    optimizer = torch.optim.Adam(network.wide.parameters(), lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        loss = loss_of(network.wide(entropy).squeeze(1), targets)
        loss.backward()
        optimizer.step()


def _fold(
    torch: Any,
    network: Any,
    *,
    mean: npt.NDArray[np.float32],
    scale: npt.NDArray[np.float32],
    hidden_size: int,
) -> list[DenseLayer]:
    """The trained network as plain dense layers: the input scaling folded into the first
    layer, each batch norm (its running statistics) into the layer before it, and the
    entropy's linear term carried by one extra unit per layer (an entropy is never negative,
    so ReLU passes it unchanged)."""
    nn = torch.nn
    modules = list(network.deep)
    layers: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = []  # [out, in]
    for index, module in enumerate(modules):
        if not isinstance(module, nn.Linear):
            continue
        weight = module.weight.detach().numpy().astype(np.float64)
        bias = module.bias.detach().numpy().astype(np.float64)
        following = modules[index + 1] if index + 1 < len(modules) else None
        if isinstance(following, nn.BatchNorm1d):
            gain = following.weight.detach().numpy() / np.sqrt(
                following.running_var.detach().numpy() + following.eps
            )
            bias = gain * (bias - following.running_mean.detach().numpy()) + (
                following.bias.detach().numpy()
            )
            weight = weight * gain[:, np.newaxis]
        if not layers:  # (x - mean) / scale folded in
            bias = bias - weight @ (mean[:hidden_size] / scale[:hidden_size])
            weight = weight / scale[np.newaxis, :hidden_size]
        layers.append((weight, bias))
    if network.wide is not None:
        layers = _with_entropy_term(
            layers,
            gain=float(network.wide.weight.detach()[0, 0]) / float(scale[hidden_size]),
            offset=float(network.wide.bias.detach()[0])
            - float(network.wide.weight.detach()[0, 0])
            * float(mean[hidden_size] / scale[hidden_size]),
        )
    return [
        DenseLayer(weight.T.astype(np.float32), bias.astype(np.float32)) for weight, bias in layers
    ]


def _with_entropy_term(
    layers: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]],
    *,
    gain: float,
    offset: float,
) -> list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    """`layers` taking the entropy as one more input, with `gain * entropy + offset` added
    to the output: each hidden layer gets a unit that copies the entropy forward."""
    extended = []
    for index, (weight, bias) in enumerate(layers):
        last = index == len(layers) - 1
        # One more input: the entropy itself (first layer) or the unit carrying it.
        column = np.zeros((weight.shape[0], 1))
        if last:
            column[0, 0] = gain
            bias = bias + offset
        weight = np.concatenate([weight, column], axis=1)
        if not last:  # one more unit, copying that input
            carry = np.zeros((1, weight.shape[1]))
            carry[0, -1] = 1.0
            weight = np.concatenate([weight, carry], axis=0)
            bias = np.concatenate([bias, [0.0]])
        extended.append((weight, bias))
    return extended
