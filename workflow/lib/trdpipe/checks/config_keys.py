"""The config keys each rule receives, declared once: a section that rules read in part is split
into named groups of keys, and a rule's params name the groups it reads, so that a changed key
reruns only the rules that use it (de.alpha reruns DE, calibration, enrichment and the report,
not qc, filter or vst). Every other section goes to its rules whole.

A key of a split section that is in no group would reach no rule, which would silently use its
default; tests/test_config_keys.py checks every key of the schema against these groups.
"""

KEY_GROUPS = {
    "de": {
        # the blind VST of qc and vst
        "vst": ("inference", "fit_type", "size_factors_fit_type", "vst_nsub"),
        # the prediction's in-fold VST: its size factors are always median of ratios
        # (trdpipe.predict.features.vst_settings), so size_factors_fit_type must not rerun it
        "in_fold_vst": ("inference", "fit_type", "vst_nsub"),
        # the fit without the contrast's coefficient that the pathway null ranks genes under
        "null_fit": (
            "engine",
            "inference",
            "fit_type",
            "size_factors_fit_type",
            "refit_cooks",
            "min_replicates",
        ),
        # a DE fit and its Wald test, as the primary model, the sensitivity models and the
        # calibration's permutations make them
        "fit_and_test": (
            "engine",
            "inference",
            "fit_type",
            "size_factors_fit_type",
            "refit_cooks",
            "min_replicates",
            "alpha",
            "cooks_filter",
            "independent_filter",
        ),
        # what decides a call
        "calls": ("alpha", "lfc_thresholds"),
        # what the primary DE table adds to a fit: the shrunk fold changes, the thresholds' calls
        "de_table": ("lfc_shrink", "lfc_thresholds"),
    },
}


def section_settings(config: dict, section: str, *groups: str) -> dict:
    """The keys of `groups` of one config section (as the config has them: with the schema's
    defaults filled in), in the order they are declared."""
    keys = dict.fromkeys(key for group in groups for key in KEY_GROUPS[section][group])
    return {key: config[section][key] for key in keys if key in config[section]}
