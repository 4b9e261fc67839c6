"""Would the calls appear by chance? The calibration of one contrast and its verdict."""

import pandas as pd

from trdpipe.calibration.permutation import calibration_strata
from trdpipe.checks.inputs import repeated_measures_column
from trdpipe.qc.metrics import confounding_alarms
from trdpipe.report.embed import figure
from trdpipe.report.inputs import Run, read_tsv
from trdpipe.report.text import anchor_of, fdr_text, permutation_p_text, table_rows

# summary.tsv rows shown in the report, with the words a reader needs
CALIBRATION_ROWS = {
    "observed_degs": "genes called, observed labels",
    "null_degs_mean": "genes called, shuffled labels: mean",
    "null_degs_median": "genes called, shuffled labels: median",
    "null_degs_p95": "genes called, shuffled labels: 95th percentile",
    "frac_permutations_with_degs": "share of shuffled analyses calling at least one gene",
    "pvalue_observed_degs": "permutation p-value of the observed count",
    "smallest_pvalue": "smallest permutation p-value attainable, 1 / (K + 1)",
    "empirical_fdr": "empirical FDR of the observed calls (SAM)",
    "pi0": "share of true nulls (pi0, Storey)",
    "observed_lambda": "inflation lambda, observed labels",
    "null_lambda_median": "inflation lambda, shuffled labels (median)",
    "qvalue_perm_calls": "genes at qvalue_perm below alpha",
}


def false_call_share(empirical_fdr: float, permutations: int) -> str:
    """'about 6%'; an empirical FDR of 0 (no permutation reached the calls' threshold) is bounded by 1/K."""
    if empirical_fdr == 0:
        return f"fewer than {1 / permutations:.0%}"
    return f"about {empirical_fdr:.0%}"


def calibration_table(numeric: pd.Series) -> pd.DataFrame:
    """The summary rows a reader needs (CALIBRATION_ROWS), the count's permutation p-value saying when it is
    the smallest possible and the empirical FDR never reading 0."""
    k = int(numeric["permutations"])
    values = {key: numeric[key] for key in CALIBRATION_ROWS}
    values["pvalue_observed_degs"] = permutation_p_text(numeric["pvalue_observed_degs"], k)
    values["empirical_fdr"] = fdr_text(numeric["empirical_fdr"], k)
    return pd.DataFrame({"statistic": list(CALIBRATION_ROWS.values()), "value": list(values.values())})


def numeric_summary(summary: pd.DataFrame) -> pd.Series:
    """summary.tsv's values as numbers by statistic, its true/false flags as 1/0 (text as NaN)."""
    flags = {"True": 1, "False": 0}
    values = summary.set_index("statistic")["value"].map(lambda value: flags.get(value, value))
    return pd.to_numeric(values, errors="coerce")


def permutations_with_as_many(values: pd.Series) -> int:
    """b of the permutation p-value (b + 1) / (K + 1): the permutations that called as many genes or more."""
    return round(float(values["pvalue_observed_degs"]) * (int(values["permutations"]) + 1)) - 1


def calibration_verdict(values: pd.Series, alpha: float) -> str:
    """One plain sentence: could the observed calls be chance? `values` as numeric_summary gives them."""
    observed, k = int(values["observed_degs"]), int(values["permutations"])
    share, median = float(values["frac_permutations_with_degs"]), float(values["null_degs_median"])
    if observed == 0:
        return (
            f"No gene reached padj < {alpha:g}, and shuffled labels gave at least one call in "
            f"{share:.0%} of {k} permutations: there are no calls here that chance would have to explain."
        )
    if 1 / (k + 1) > 0.05:
        if values.get("all_labellings_enumerated") == 1:
            few = (
                f"only {k} distinct permutations exist (the observed labelling and its mirror image left out)"
            )
        else:
            few = f"only {k} permutations were refitted (calibration.permutations; 19 or more can reach 0.05)"
        return (
            f"The calibration cannot tell whether these {observed} calls are chance: {few}, so no "
            f"permutation p-value can fall below 1 / {k + 1} = {1 / (k + 1):.2g}; shuffled labels gave as "
            f"many calls or more in {permutations_with_as_many(values)} of the {k}."
        )
    if float(values["pvalue_observed_degs"]) <= 0.05:
        return (
            f"The {observed} genes called would not appear by chance: shuffled labels gave a median of "
            f"{median:g} and at most {float(values['null_degs_p95']):g} calls in 95% of {k} permutations, "
            f"and {false_call_share(float(values['empirical_fdr']), k)} of the observed calls are expected "
            "to be false."
        )
    return (
        f"Chance alone could give these {observed} calls: shuffled labels gave as many or more in "
        f"{permutations_with_as_many(values)} of {k} permutations, so read the gene list by "
        f"qvalue_perm ({int(values['qvalue_perm_calls'])} genes) rather than by padj."
    )


def with_confounding_caveat(verdict: str, alarms: list[str], contrast: dict) -> str:
    """The calibration's verdict, and beside a confounding alarm what the permutations cannot see:
    they shuffle the labels away from the confounder, whose effect the observed labels carry."""
    if not alarms:
        return verdict
    return (
        f"{verdict} The permutations cannot detect confounding: they shuffle {contrast['variable']} "
        "and leave every other column with its samples, so a difference that goes with a confounded "
        "column passes as a group difference."
    )


def permutations_run(path) -> dict:
    """The strata and the number K of the permutations the calibration ran (summary.tsv)."""
    values = read_tsv(path).set_index("statistic")["value"]
    return {"strata": values["strata"], "permutations": int(float(values["permutations"]))}


def calibration_section(
    name: str, files: dict, config: dict, caption_dir, obs: pd.DataFrame | None = None
) -> dict:
    """Observed vs null DEG counts, empirical FDR, lambda, the verdict, the QQ plot and histogram;
    with the samples' sheet (`obs`), whether the permutations pair each subject with itself."""
    summary = pd.read_csv(files["summary"], sep="\t", keep_default_na=False, na_values=[""])
    values = summary.set_index("statistic")["value"]
    numeric = numeric_summary(summary)
    # the captions count the permutations that ran: all distinct ones when fewer exist than asked for
    ran = {**config, "calibration": {**config["calibration"], "permutations": int(numeric["permutations"])}}
    return {
        "name": name,
        "anchor": anchor_of("calibration", name),
        "verdict": calibration_verdict(numeric, config["de"]["alpha"]),
        "permutations": int(numeric["permutations"]),
        "strata": values["strata"],
        "table": table_rows(calibration_table(numeric)),
        "figures": [figure(files[key], caption_dir, ran) for key in ("qq", "null_degs")],
        "paired": calibration_pairing(obs, config["contrasts"][name], config) if obs is not None else "",
    }


def calibration_pairing(obs: pd.DataFrame, contrast: dict, config: dict) -> str:
    """'Paired design: ...' when the permutation strata hold the design's column of repeated
    measures (repeated_measures_column: subjects sampled in both compared levels); else ''."""
    subject = repeated_measures_column(obs, config["design"], contrast)
    strata = calibration_strata(obs, config["design"], contrast["variable"], config["calibration"]["strata"])
    if subject is None or subject not in strata:
        return ""
    return (
        f"Paired design: the permutations stay within {subject} ({' x '.join(strata)}), so every {subject} "
        f"keeps its own mix of {contrast['variable']} levels and is compared with itself."
    )


def calibration_files(run: Run, name: str) -> dict:
    return {
        "summary": run.inputs.of(name, "calibration_summary"),
        "qq": run.inputs.of(name, "calibration_qq"),
        "null_degs": run.inputs.of(name, "calibration_null_degs"),
    }


def build(run: Run) -> dict:
    sections = []
    for name, contrast in run.contrasts.items():
        section = calibration_section(
            name, calibration_files(run, name), run.config, run.template_dir, run.filtered.obs
        )
        alarms = confounding_alarms(run.confounding, name)
        section["verdict"] = with_confounding_caveat(section["verdict"], alarms, contrast)
        sections.append(section)
    return {
        "toc": [{"anchor": s["anchor"], "label": f"By chance? {s['name']}"} for s in sections],
        "calibration": sections,
    }
