"""The calibration's figures: the QQ plot of observed against permuted p-values, and the DEG counts
of the permutations beside the observed one."""

import matplotlib.pyplot as plt
import numpy as np


def qq_quantiles(observed_p: np.ndarray, null_p: np.ndarray) -> tuple[np.ndarray, ...]:
    """-log10 p of the observed genes against the permutations' at the same quantiles: the
    permutations' mean (x), its 2.5% and 97.5% points over permutations (the envelope) and the
    observed (y), from the most to the least significant."""
    observed = observed_p[np.isfinite(observed_p)]
    probabilities = (np.arange(len(observed)) + 0.5) / len(observed)
    # each permutation has its own genes without a p-value: compare at quantiles, not ranks
    null = np.array([np.quantile(row[np.isfinite(row)], probabilities) for row in null_p])
    null = -np.log10(np.clip(null, 1e-300, None))
    low, high = np.percentile(null, [2.5, 97.5], axis=0)
    return (
        null.mean(axis=0),
        low,
        high,
        -np.log10(np.clip(np.quantile(observed, probabilities), 1e-300, None)),
    )


def qq_plot(observed_p: np.ndarray, null_p: np.ndarray, title: str):
    expected, low, high, observed = qq_quantiles(observed_p, null_p)
    fig, ax = plt.subplots(figsize=(5.5, 5), layout="constrained")
    ax.fill_between(expected, low, high, color="0.85", lw=0, label=f"95% of {len(null_p)} permutations")
    ax.plot(
        [0, expected.max()],
        [0, expected.max()],
        c="0.4",
        lw=0.8,
        ls="--",
        label="observed = permutation null",
    )
    ax.scatter(expected, observed, s=5, c="#c0392b", lw=0, label="observed genes")
    ax.set_xlabel("-log10 p, label permutations (mean at each quantile)")
    ax.set_ylabel("-log10 p, observed labels")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return fig


def null_degs_plot(null_degs: np.ndarray, observed: int, alpha: float, title: str):
    fig, ax = plt.subplots(figsize=(5.5, 4), layout="constrained")
    top = int(null_degs.max())
    bins = np.arange(-0.5, top + 1.5) if top <= 60 else np.linspace(0, top, 40)
    ax.hist(null_degs, bins=bins, color="0.5", label=f"{len(null_degs)} label permutations")
    ax.axvline(observed, c="#c0392b", lw=2, label=f"observed: {observed}")
    # null counts are often 0-3 and observed ones hundreds: linear up to 1, logarithmic beyond
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(-0.6, max(top, observed) * 1.5 + 1)
    ax.set_xlabel(f"genes at padj < {alpha:g}")
    ax.set_ylabel("permutations")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    return fig
