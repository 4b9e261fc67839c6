"""Provenance: versions, config files, input checksums, compute resources."""

import re
from pathlib import Path

import pandas as pd
import yaml

from trdpipe.report.inputs import Run
from trdpipe.report.text import table_rows


def version_label(workflow: dict) -> str:
    """'0.1.0.dev0', with the commit when the workflow was run from a git checkout."""
    commit = workflow.get("commit")
    return workflow["version"] + (f" (commit {commit})" if commit else "")


def resource_provenance(readme_text: str) -> str:
    """The first bullet of a resource README's '## Source...' section, as plain text."""
    section = re.search(r"^## Source[^\n]*\n(.*?)(?=^## |\Z)", readme_text, flags=re.M | re.S)
    if not section:
        return ""
    bullet = re.search(r"^- (.*?)(?=^- |^\s*$|\Z)", section.group(1), flags=re.M | re.S)
    text = bullet.group(1) if bullet else ""
    return " ".join(text.replace("**", "").replace("`", "").split())


def input_checksums(ingest: dict) -> pd.DataFrame:
    """File and md5 of every input, from cohort.h5ad's uns["ingest"]."""
    return pd.DataFrame({"file": list(ingest["input_files"]), "md5": list(ingest["input_md5"])}).sort_values(
        "file", kind="stable"
    )


def job_label(path: Path) -> str:
    """'deseq2 TRD_vs_responder' for results/benchmarks/deseq2/TRD_vs_responder.tsv; an extra
    assay's job (results/benchmarks/assays/<assay>/<rule>/...) is followed by its assay, '(mirna)'."""
    rule, name = path.parent.name, path.stem
    label = rule if name == rule else f"{rule} {name}"
    if path.parent.parent.parent.name == "assays":
        label += f" ({path.parent.parent.name})"
    return label


def compute_resources(paths: list[str]) -> pd.DataFrame:
    """Wall time, CPU time and peak memory of every job, from Snakemake's benchmark files
    (results/benchmarks/<rule>/<name>.tsv), and their sum (the peak: the largest job's)."""
    rows = []
    for path in map(Path, paths):
        measured = pd.read_csv(path, sep="\t").iloc[-1]
        rows.append(
            {
                "job": job_label(path),
                "wall time (s)": measured["s"],
                "CPU time (s)": measured["cpu_time"],
                "peak memory (MB)": measured["max_rss"],
            }
        )
    table = pd.DataFrame(rows, columns=["job", "wall time (s)", "CPU time (s)", "peak memory (MB)"])
    total = {
        "job": "all jobs",
        "wall time (s)": table["wall time (s)"].sum(),
        "CPU time (s)": table["CPU time (s)"].sum(),
        "peak memory (MB)": table["peak memory (MB)"].max(),
    }
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def build(run: Run) -> dict:
    software = run.software
    return {
        "toc": [{"anchor": "provenance", "label": "Provenance"}],
        "versions": software["packages"],
        "config_files": software.get("config_files", []),
        "config_yaml": yaml.safe_dump(run.config, sort_keys=False, allow_unicode=True),
        "checksums": table_rows(input_checksums(run.cohort.uns["ingest"])),
        "resources": table_rows(compute_resources(run.inputs.benchmarks)),
    }
