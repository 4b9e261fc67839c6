"""Rule report: one self-contained HTML report built from the result tables and figures (no analysis is
re-run). The work is done in trdpipe.report.page."""

import logging
from datetime import UTC, datetime
from pathlib import Path

import anndata as ad
import pandas as pd
import yaml

from trdpipe.common import atomic_output, run_script
from trdpipe.model.filtering import contrast_cohort
from trdpipe.model.sensitivity import active_models
from trdpipe.report.page import (
    REFERENCES,
    balance_by_variable,
    calibration_methods,
    calibration_section,
    cohort_tables,
    compute_resources,
    contrast_section,
    contrast_tables,
    describe_coding,
    enrichment_methods,
    enrichment_section,
    figure,
    flagged_samples,
    input_checksums,
    interactive_scripts,
    key_findings,
    methods_paragraph,
    plain_config,
    prediction_methods,
    prediction_section,
    qc_sentence,
    read_software_versions,
    render_page,
    resource_provenance,
    robustness_methods,
    robustness_section,
    significant_associations,
    table_rows,
    version_label,
)

log = logging.getLogger("trd")


def main(smk) -> None:
    params = smk.params
    config = plain_config(params.config)
    contrasts = config["contrasts"]
    cohort = ad.read_h5ad(smk.input.cohort, backed="r")
    vst = ad.read_h5ad(smk.input.vst)
    filtered = ad.read_h5ad(smk.input.filtered)
    metrics = pd.read_csv(smk.input.metrics, sep="\t", index_col=0)
    filter_summary = pd.read_csv(smk.input.filter_summary, sep="\t").set_index("step")["n"]
    software = read_software_versions(smk.input.software_versions)
    versions, version = software["packages"], version_label(software["workflow"])
    # the captions live beside the template (workflow/report/)
    template_dir = Path(smk.input.template).parent

    sections = []
    for name, table, model, volcano, ma in zip(
        contrasts, smk.input.tables, smk.input.models, smk.input.volcanos, smk.input.mas
    ):
        files = {"table": table, "model": model, "volcano": volcano, "ma": ma}
        log.info("contrast %s", name)
        sections.append(
            contrast_section(
                name, contrasts[name], files, config, vst, template_dir, contrast_cohort(filtered, name)
            )
        )
    findings = [
        key_findings(name, contrasts[name], contrast_tables(name, index, smk), config)
        for index, name in enumerate(contrasts)
    ]
    enrichment = []
    for name, *paths in zip(
        contrasts,
        smk.input.gsea,
        smk.input.ora,
        smk.input.gsea_dotplots,
        smk.input.ora_dotplots,
        smk.input.running_scores,
    ):
        files = dict(zip(("gsea", "ora", "gsea_dotplot", "ora_dotplot", "running_scores"), paths))
        enrichment.append(enrichment_section(name, contrasts[name], files, config, template_dir))
    predictions = []
    for name, *paths in zip(
        contrasts,
        smk.input.predict_comparison,
        smk.input.predict_site,
        smk.input.predict_genes,
        smk.input.predict_roc,
        smk.input.predict_calibration,
    ):
        files = dict(zip(("comparison", "site", "genes", "roc", "calibration"), paths))
        predictions.append(prediction_section(name, contrasts[name], files, config, template_dir))
    robustness = (
        robustness_section(contrasts, smk.input, config, template_dir) if smk.input.concordance else None
    )
    calibration = []
    for name, *paths in zip(
        contrasts, smk.input.calibration_summaries, smk.input.calibration_qq, smk.input.calibration_null_degs
    ):
        files = dict(zip(("summary", "qq", "null_degs"), paths))
        calibration.append(calibration_section(name, files, config, template_dir))
    models = {name: pd.read_csv(path, sep="\t") for name, path in zip(contrasts, smk.input.models)}
    provenance = [resource_provenance(Path(p).read_text(encoding="utf-8")) for p in smk.input.readmes]
    flagged = flagged_samples(metrics)

    run = {
        "pipeline_version": version,
        "versions": versions,
        "design": config["design"],
        "filter": config["filter"],
        "deseq2": config["deseq2"],
        "n_samples_in": int(filter_summary["samples in"]),
        "n_samples_flagged": int((flagged["flags"] != "").sum()),
        "n_samples_excluded": int(filter_summary["samples excluded by QC"]),
        "n_samples_kept": int(filter_summary["samples kept"]),
        "n_genes_in": int(filter_summary["genes in"]),
        "n_genes_kept": int(filter_summary["genes kept"]),
        "coding": describe_coding(next(iter(models.values()))),
        "contrasts": "; ".join(s["description"] for s in sections),
        "provenance": [p for p in provenance if p],
        "enrichment": enrichment_methods(
            config["enrichment"], versions, config["calibration"]["permutations"]
        ),
        "calibration": calibration_methods(config["calibration"], calibration),
        "prediction": prediction_methods(config["predict"], config["seed"], versions) if predictions else "",
        "robustness": (
            robustness_methods(
                config["cells"],
                active_models(config["sensitivity"], config["cells"]),
                robustness["covariates"],
            )
            if robustness
            else ""
        ),
    }
    context = {
        "title": "TRD blood-transcriptome differential expression",
        "created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "pipeline_version": version,
        "versions": versions,
        "config_yaml": yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
        "checksums": table_rows(input_checksums(cohort.uns["ingest"])),
        "resources": table_rows(compute_resources(smk.input.benchmarks)),
        "key_findings": findings,
        "cohort": cohort_tables(cohort.obs, contrasts, models),
        "n_samples": cohort.n_obs,
        "filter_summary": table_rows(filter_summary.reset_index()),
        "flagged": table_rows(flagged),
        "qc_summary": qc_sentence(run["n_samples_flagged"], run["n_samples_excluded"], run["n_samples_kept"]),
        "balance": balance_by_variable(pd.read_csv(smk.input.balance, sep="\t"), contrasts),
        "qc_tables": [
            {
                "title": "Principal components associated with a covariate (p < 0.05)",
                "id": "pc-covariate-association",
                "table": table_rows(significant_associations(pd.read_csv(smk.input.association, sep="\t"))),
            }
        ],
        "enrichment": enrichment,
        "calibration": calibration,
        "predictions": predictions,
        "robustness": robustness,
        "qc_figures": [figure(path, template_dir, config) for path in smk.input.qc_figures],
        "contrasts": sections,
        "methods": methods_paragraph(run),
        "references": REFERENCES,
        **interactive_scripts(template_dir),
    }
    page = render_page(context, template_dir)
    with atomic_output(smk.output.html) as tmp:
        tmp.write_text(page, encoding="utf-8")
    log.info("report written: %s (%.1f MB)", smk.output.html, len(page) / 1e6)


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
