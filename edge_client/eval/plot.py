"""The trade-off curve as a PNG: accuracy against the teacher-token ratio, one line per policy,
horizontal lines for the student alone and the teacher alone, Wilson intervals as error bars.
matplotlib is an optional extra (`relay-decoding[eval]`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edge_client.errors import ConfigError
from edge_client.eval.summary import SettingSummary

INSTALL_HINT = "pip install 'relay-decoding[eval]'"
_BASELINES = {"never": ("student alone", "tab:gray"), "teacher": ("teacher alone", "black")}


def plotting_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_plot(summaries: Sequence[SettingSummary], path: Path, *, title: str) -> None:
    """Draws the curve to `path`. Raises ConfigError with the install hint without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display is needed or wanted
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError(f"drawing the plot needs matplotlib: {INSTALL_HINT}") from exc
    figure, axes = plt.subplots(figsize=(7, 4.5))
    try:
        for family in dict.fromkeys(summary.family for summary in summaries):
            points = sorted(
                (s for s in summaries if s.family == family), key=lambda s: s.teacher_token_ratio
            )
            if family in _BASELINES:
                label, colour = _BASELINES[family]
                axes.axhline(100 * points[0].accuracy, color=colour, linestyle="--", label=label)
                continue
            axes.errorbar(
                [100 * s.teacher_token_ratio for s in points],
                [100 * s.accuracy for s in points],
                yerr=[
                    [100 * (s.accuracy - s.accuracy_low) for s in points],
                    [100 * (s.accuracy_high - s.accuracy) for s in points],
                ],
                marker="o",
                capsize=3,
                label=family,
            )
        axes.set_xlabel("teacher tokens (% of generated tokens)")
        axes.set_ylabel("accuracy (%)")
        axes.set_title(title)
        axes.grid(alpha=0.3)
        axes.legend(loc="best", fontsize="small")
        figure.tight_layout()
        figure.savefig(path, dpi=120)
    finally:
        plt.close(figure)
