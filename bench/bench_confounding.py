"""How often the confounding alarm fires, by cohort size and planted confounding.

A two-level batch is drawn per sample with P(A | TRD) = (1 + c) / 2 and P(A | responder) =
(1 - c) / 2 (c = 0: independent of the group, the null), and a five-level batch and a normal
covariate independently of the group; each is tested as a column that is not in the design,
with the default thresholds (qc.confounding_association 0.5, qc.confounding_pvalue 0.001).

    .venv/bin/python bench/bench_confounding.py --draws 400
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "lib"))
from trdpipe.qc import metrics as qc  # noqa: E402

SETTINGS = {"confounding_association": 0.5, "confounding_pvalue": 0.001}
CONTRAST = {"variable": "group", "test": "TRD", "reference": "responder"}


def fires(column: pd.Series, labels: pd.Series) -> bool:
    found = qc.column_association(column, labels, CONTRAST)
    return found is not None and qc.is_alarm({**found, "in_design": False}, SETTINGS)


def alarm_rates(n: int, confounding: float, draws: int, rng: np.random.Generator) -> dict:
    labels = pd.Series(np.where(np.arange(n) < n // 2, "TRD", "responder"))
    in_a = np.where(labels == "TRD", (1 + confounding) / 2, (1 - confounding) / 2)
    counts = {"batch2": 0, "batch5": 0, "normal": 0}
    for _ in range(draws):
        counts["batch2"] += fires(pd.Series(np.where(rng.random(n) < in_a, "A", "B"), name="b"), labels)
        if confounding == 0:
            counts["batch5"] += fires(pd.Series(rng.choice(list("ABCDE"), n), name="b"), labels)
            counts["normal"] += fires(pd.Series(rng.normal(0, 1, n), name="x"), labels)
    rates = {"n": n, "confounding": confounding, "batch2": counts["batch2"] / draws}
    if confounding == 0:
        rates.update(batch5=counts["batch5"] / draws, normal=counts["normal"] / draws)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=400)
    parser.add_argument("--sizes", type=int, nargs="+", default=[12, 31, 48, 300])
    parser.add_argument("--confounding", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    rows = [alarm_rates(n, c, args.draws, rng) for n in args.sizes for c in args.confounding]
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
