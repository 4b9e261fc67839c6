"""Coverage of the prediction's AUC intervals under the null, over seeds.

Each seed draws a cohort of pure-noise features and runs the prediction's own nested
cross-validation and prediction.compare_models on it (tests/noise_cv.py), with the config's
defaults but the learners given. Any model trained on noise has a true AUC
of 0.5 and no gain over another, so a 95% interval should contain 0.5 (and the gain interval
0) in about 95% of seeds, and the gain's p-value should fall below 0.05 in about 5%. Printed
per model: how often the corrected resampled t interval (auc_low/auc_high) and the bootstrap
of the pooled predictions (auc_pooled_low/high) contain 0.5, their mean half-widths, and for
the models with genes how often the gain interval contains 0 and gain_p < 0.05.

    .venv/bin/python bench/bench_predict_coverage.py --samples 300 --seeds 100
    .venv/bin/python bench/bench_predict_coverage.py --samples 100 --seeds 200 --learners l2 elasticnet
"""

import argparse
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "workflow" / "lib"), str(ROOT / "tests")]

from noise_cv import coverage, null_comparison  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--genes", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--learners", nargs="+", default=["l2"])
    args = parser.parse_args()
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    settings = {
        key: spec["default"]
        for key, spec in schema["properties"]["predict"]["properties"].items()
        if "default" in spec
    }
    settings["learners"] = args.learners
    tables = pd.concat(
        [
            null_comparison(args.samples, args.genes, settings, seed).assign(seed=seed)
            for seed in range(1, args.seeds + 1)
        ],
        ignore_index=True,
    )
    print(
        f"{args.seeds} noise cohorts of {args.samples} samples x {args.genes} genes; {settings['repeats']} x "
        f"{settings['outer_folds']}-fold nested CV, {settings['n_genes']} genes selected per fold"
    )
    print(coverage(tables).to_string(float_format="%.3f"))


if __name__ == "__main__":
    main()
