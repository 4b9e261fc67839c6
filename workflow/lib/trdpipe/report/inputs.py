"""The report rule's inputs, read by name and by contrast."""

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import pandas as pd
import yaml


def read_tsv(path) -> pd.DataFrame:
    """A result table as written ('NA' gene symbols stay text; empty cells are missing)."""
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])


def calibration_permutations(path) -> int:
    """K, the label permutations the calibration refitted (summary.tsv), whose null gives every
    label-permutation p-value and FDR of the contrast."""
    summary = read_tsv(path).set_index("statistic")["value"]
    return int(summary["permutations"])


def plain_config(config) -> dict:
    """The config as plain dicts and lists (Snakemake may hand over its own mapping types)."""
    return json.loads(json.dumps(config, default=str))


@dataclass
class ReportInputs:
    """The report rule's files: `run` by name (Snakemake's named input, or a dict), `contrasts` by
    contrast and name ({contrast: {name: path}}, the manifest report.smk builds; a step the run
    skipped has no name), the sensitivity models' files under 'sensitivity' ({model: {name: path}})."""

    run: Mapping
    contrasts: dict[str, dict]
    # the sensitivity model flagged `key_finding` (trdpipe.model.sensitivity.key_finding_model), or None
    key_model: str | None = None

    def __getattr__(self, name: str):
        return self.run[name]

    def of(self, contrast: str, name: str) -> str | None:
        return self.contrasts[contrast].get(name)

    def each(self, name: str) -> dict[str, str]:
        """{contrast: path} of one name, for the contrasts that have it."""
        return {c: files[name] for c, files in self.contrasts.items() if name in files}

    def sensitivity(self, contrast: str) -> dict[str, dict]:
        return self.contrasts[contrast].get("sensitivity", {})

    def assays(self, contrast: str) -> dict[str, dict]:
        """Each extra assay's files of one contrast, by assay ({assay: {name: path}}; none without
        config `assays:`)."""
        return self.contrasts[contrast].get("assays", {})

    def key_finding_files(self, contrast: str) -> dict | None:
        """The files of the key findings' sensitivity model of a contrast (`key_finding: true`)."""
        return self.sensitivity(contrast).get(self.key_model) if self.key_model else None


@dataclass
class Run:
    """What every section reads: the inputs, the config, the template folder (captions) and ingest's
    notes on the parts `enabled: auto` switched off; the shared tables read once."""

    inputs: ReportInputs
    config: dict
    template_dir: Path
    switched_off: list[str] = field(default_factory=list)

    @property
    def contrasts(self) -> dict:
        return self.config["contrasts"]

    @functools.cached_property
    def cohort(self) -> ad.AnnData:
        return ad.read_h5ad(self.inputs.cohort, backed="r")

    @functools.cached_property
    def filtered(self) -> ad.AnnData:
        """Raw counts of the genes and samples each contrast was fitted on."""
        return ad.read_h5ad(self.inputs.filtered)

    @functools.cached_property
    def vst(self) -> ad.AnnData:
        """On disk: the report reads the heat maps' genes and samples only."""
        return ad.read_h5ad(self.inputs.vst, backed="r")

    @functools.cached_property
    def confounding(self) -> pd.DataFrame:
        return read_tsv(self.inputs.confounding)

    @functools.cached_property
    def models(self) -> dict[str, pd.DataFrame]:
        """Each contrast's model.tsv: how the design variables were coded."""
        return {name: pd.read_csv(path, sep="\t") for name, path in self.inputs.each("model").items()}

    @functools.cached_property
    def software(self) -> dict:
        """results/software_versions.yml (rule software_versions): {workflow: {...}, packages: {...}}."""
        return yaml.safe_load(Path(self.inputs.software_versions).read_text(encoding="utf-8"))

    @functools.cached_property
    def filter_summary(self) -> pd.Series:
        return pd.read_csv(self.inputs.filter_summary, sep="\t").set_index("step")["n"]
