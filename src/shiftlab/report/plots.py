"""Report plots as PNG bytes (matplotlib, Agg backend)."""

from __future__ import annotations

import io
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from shiftlab.evaluate.robustness import Trend
from shiftlab.report.summary import ModelRow, wise_curves


def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def id_vs_ood(
    rows: list[ModelRow],
    trend: Trend | None = None,
    spread: dict[str, tuple[float, float]] | None = None,
) -> bytes | None:
    """Scatter of ID test vs mean OOD accuracy, the y = x line, WiSE-FT curves, and the
    baselines' trend (effective robustness is the height above it); extra trend points (probes
    at other C, earlier epochs) are small grey dots. A model in ``spread`` (its rows: means over
    seeds) gets error bars of one standard deviation (ID, OOD)."""
    every = [
        r for r in rows if r.id_test is not None and r.ood_mean is not None and not r.calibrated
    ]
    points = [r for r in every if not r.trend_point]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    extra = [r for r in every if r.trend_point]
    if extra:
        ax.scatter(
            [r.id_test for r in extra],
            [r.ood_mean for r in extra],
            s=10,
            color="grey",
            alpha=0.6,
            label="extra baseline points",
        )
    curves = wise_curves(points)
    on_curve = {r.model for curve in curves.values() for r in curve}
    for name, curve in curves.items():
        xs, ys = [r.id_test for r in curve], [r.ood_mean for r in curve]
        ax.plot(xs, ys, "-o", ms=3.5, lw=1.4, label=f"{name} (alpha 0 to 1)")
        for r in curve:
            if r.params["alpha"] in (0.0, 0.5, 1.0):
                ax.annotate(
                    f"α={r.params['alpha']:g}",
                    (r.id_test, r.ood_mean),
                    fontsize=7,
                    xytext=(4, -8),
                    textcoords="offset points",
                )
    for r in points:
        if r.model in on_curve:
            continue
        ax.scatter([r.id_test], [r.ood_mean], s=36, zorder=3)
        ax.annotate(
            r.model, (r.id_test, r.ood_mean), fontsize=8, xytext=(4, 4), textcoords="offset points"
        )
    for r in points:
        if spread and r.model in spread:
            x_std, y_std = spread[r.model]
            ax.errorbar(
                r.id_test,
                r.ood_mean,
                xerr=x_std,
                yerr=y_std,
                fmt="none",
                ecolor="grey",
                elinewidth=1,
                capsize=3,
                zorder=2,
            )
    values = [v for r in every for v in (r.id_test, r.ood_mean)]
    low, high = min(values) - 0.02, max(values) + 0.02
    ax.plot([low, high], [low, high], "--", color="grey", lw=1, label="y = x")
    if trend is not None:
        xs = np.linspace(low, high, 100)
        ax.plot(
            xs,
            trend.predict(xs),
            ":",
            color="black",
            lw=1.2,
            label=f"baselines' trend ({trend.kind}, {trend.points} points)",
        )
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel("ID test accuracy")
    ax.set_ylabel("mean OOD accuracy")
    ax.set_title("ID vs OOD accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def wise_ft_alpha(rows: list[ModelRow]) -> bytes | None:
    """ID test and mean OOD accuracy over the WiSE-FT mixing coefficient."""
    curves = wise_curves(rows)
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, curve in curves.items():
        alphas = [r.params["alpha"] for r in curve]
        ax.plot(alphas, [r.id_test for r in curve], "-o", ms=3.5, label=f"{name}: ID test")
        ax.plot(alphas, [r.ood_mean for r in curve], "-s", ms=3.5, label=f"{name}: OOD mean")
    ax.set_xlabel("alpha (0 = zero-shot, 1 = fine-tuned)")
    ax.set_ylabel("accuracy")
    ax.set_title("WiSE-FT: accuracy over alpha")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def reliability(rows: list[ModelRow], limit: int = 4) -> bytes | None:
    """Reliability diagrams on ID test: accuracy against confidence per bin, one panel per
    model, with its temperature-scaled twin when there is one."""
    by_name = {r.model: r for r in rows}
    pairs = [
        (r, by_name.get(f"{r.model}+ts"))
        for r in rows
        if not r.calibrated and r.reliability_id and f"{r.model}+ts" in by_name
    ]
    if not pairs:
        pairs = [(r, None) for r in rows if r.reliability_id and r.recipe != "wise_ft"]
    pairs = pairs[:limit]
    if not pairs:
        return None
    fig, axes = plt.subplots(1, len(pairs), figsize=(3.2 * len(pairs), 3.4), squeeze=False)
    for ax, (row, twin) in zip(axes[0], pairs, strict=True):
        for r, style, label in ((row, "-o", "as trained"), (twin, "-s", "temperature-scaled")):
            if r is None or not r.reliability_id:
                continue
            bins = r.reliability_id
            xs = [c for c, n in zip(bins["confidence"], bins["count"], strict=True) if n]
            ys = [a for a, n in zip(bins["accuracy"], bins["count"], strict=True) if n]
            ax.plot(xs, ys, style, ms=3.5, label=f"{label}, ECE {r.ece_id:.3f}")
        ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(row.model, fontsize=9)
        ax.set_xlabel("confidence")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    axes[0][0].set_ylabel("accuracy (ID test)")
    return _png(fig)


def severity(curves: dict[str, dict[str, list[tuple[int, float]]]]) -> bytes | None:
    """Corrupted accuracy over severity, one line per adapter, one panel per model."""
    if not curves:
        return None
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.6), squeeze=False)
    for ax, (model, by_adapter) in zip(axes[0], curves.items(), strict=True):
        for adapter, points in by_adapter.items():
            ax.plot([v for v, _ in points], [a for _, a in points], "-o", ms=3.5, label=adapter)
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("severity")
        ax.set_xticks(sorted({v for pts in by_adapter.values() for v, _ in pts}))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("accuracy on corrupted splits")
    return _png(fig)


def pruning(curves: dict[str, dict[str, list[tuple[Any, ...]]]]) -> bytes | None:
    """Accuracy over the fraction of training data kept, one panel per retrained recipe, ID
    (solid) and OOD mean (dashed), one colour per pruning score (random: the control) or
    selection method (kcenter, d2), with a band of each point's 95% bootstrap interval where
    the report computed one (points: fraction, ID, OOD, ID interval, OOD interval)."""
    if not curves:
        return None
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.6), squeeze=False)
    for ax, (recipe, lines) in zip(axes[0], curves.items(), strict=True):
        for i, (score, points) in enumerate(sorted(lines.items())):
            color = f"C{i}"
            xs = [p[0] for p in points]
            ax.plot(xs, [p[1] for p in points], "-o", color=color, ms=3.5, label=f"{score}, ID")
            ax.plot(xs, [p[2] for p in points], "--s", color=color, ms=3.5, label=f"{score}, OOD")
            for column in (3, 4):
                bands = [p[column] for p in points if len(p) > column]
                if len(bands) == len(points) and all(b is not None for b in bands):
                    low, high = [b[0] for b in bands], [b[1] for b in bands]
                    ax.fill_between(xs, low, high, color=color, alpha=0.12, linewidth=0)
        ax.set_title(recipe, fontsize=9)
        ax.set_xlabel("fraction of training data kept")
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("accuracy")
    return _png(fig)
