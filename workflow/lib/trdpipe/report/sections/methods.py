"""Methods: every parameter and version that shaped the result, and the references."""

from pathlib import Path

from trdpipe.model.sensitivity import active_models
from trdpipe.report.inputs import Run
from trdpipe.report.sections.calibration import permutations_run
from trdpipe.report.sections.de import describe_coding, describe_contrast
from trdpipe.report.sections.prediction import groupings
from trdpipe.report.sections.provenance import resource_provenance, version_label
from trdpipe.report.sections.qc import qc_counts, qc_sentence
from trdpipe.report.sections.robustness import concordance_files, covariates_chosen

REFERENCES = [
    "Love MI, Huber W, Anders S (2014) Moderated estimation of fold change and dispersion for "
    "RNA-seq data with DESeq2. Genome Biology 15:550. doi:10.1186/s13059-014-0550-8",
    "Muzellec B, Teleńczuk M, Cabeli V, Andreux M (2023) PyDESeq2: a python package for bulk "
    "RNA-seq differential expression analysis. Bioinformatics 39:btad547. "
    "doi:10.1093/bioinformatics/btad547",
    "Chen Y, Lun ATL, Smyth GK (2016) From reads to genes to pathways: differential expression "
    "analysis of RNA-Seq experiments using Rsubread and the edgeR quasi-likelihood pipeline. "
    "F1000Research 5:1438 (filterByExpr)",
    "Mölder F, Jablonski KP, Letcher B, et al. (2021) Sustainable data analysis with Snakemake. "
    "F1000Research 10:33. doi:10.12688/f1000research.29032.2",
    "Fang Z, Liu X, Peltz G (2023) GSEApy: a comprehensive package for performing gene set "
    "enrichment analysis in Python. Bioinformatics 39:btac757. doi:10.1093/bioinformatics/btac757",
    "Korotkevich G, Sukhov V, Budin N, et al. (2021) Fast gene set enrichment analysis. "
    "bioRxiv 060012. doi:10.1101/060012",
    "Subramanian A, Tamayo P, Mootha VK, et al. (2005) Gene set enrichment analysis: a "
    "knowledge-based approach for interpreting genome-wide expression profiles. PNAS "
    "102:15545-15550. doi:10.1073/pnas.0506580102",
    "The Gene Ontology Consortium, Aleksander SA, Balhoff J, et al. (2023) The Gene Ontology "
    "knowledgebase in 2023. Genetics 224:iyad031 (GO is CC BY 4.0)",
    "Pedregosa F, Varoquaux G, Gramfort A, et al. (2011) Scikit-learn: machine learning in "
    "Python. Journal of Machine Learning Research 12:2825-2830",
    "Sirés A, Domínguez-Barragán J, Lorenzon N, et al. (2025) Blood transcriptomic analysis reveals a "
    "distinct molecular subtype of treatment resistant depression compared to non-treatment resistant "
    "depression. Brain, Behavior, and Immunity. doi:10.1016/j.bbi.2025.106103",
    "Tusher VG, Tibshirani R, Chu G (2001) Significance analysis of microarrays applied to the ionizing "
    "radiation response. PNAS 98:5116-5121. doi:10.1073/pnas.091062498",
    "Storey JD, Tibshirani R (2003) Statistical significance for genomewide studies. PNAS 100:9440-9445. "
    "doi:10.1073/pnas.1530509100",
    "Li Y, Ge X, Peng F, Li W, Li JJ (2022) Exaggerated false positives by popular differential expression "
    "methods when analyzing human population samples. Genome Biology 23:79. doi:10.1186/s13059-022-02648-4",
    "Wu D, Smyth GK (2012) Camera: a competitive gene set test accounting for inter-gene correlation. "
    "Nucleic Acids Research 40:e133. doi:10.1093/nar/gks461",
    "Smyth GK (2004) Linear models and empirical Bayes methods for assessing differential expression in "
    "microarray experiments. Statistical Applications in Genetics and Molecular Biology 3:3. "
    "doi:10.2202/1544-6115.1027",
]


LEARNERS = {
    "l2": "L2-penalised logistic regression",
    "elasticnet": "elastic-net logistic regression",
    "hgb": "histogram gradient boosting",
}


def prediction_settings(settings: dict, seed: int, predictions: list[dict]) -> dict:
    """The prediction's settings for its paragraph, the learners in words, and the contrasts whose
    folds keep related samples together."""
    return {
        **settings,
        "learners": [LEARNERS[name] for name in settings["learners"]],
        "stacked_learners": [LEARNERS[name] for name in settings["stacked_learners"]],
        "seed": seed,
        "grouped": [{"name": p["name"], "grouping": p["grouping"]} for p in predictions if p["groups"]],
    }


def provenance_entries(readmes: list[str]) -> list[str]:
    """Each shipped resource's source, from its README; each is a sentence of its README, so its own
    full stop goes (joined they would read '.;')."""
    entries = [resource_provenance(Path(p).read_text(encoding="utf-8")) for p in readmes]
    return [entry.rstrip(". ") for entry in entries if entry]


def build(run: Run) -> dict:
    """The values of the methods paragraphs (workflow/report/sections/methods.html.j2 holds the prose):
    every parameter and version that shaped the result; a step this run skipped has none."""
    config, summary = run.config, run.filter_summary
    counts = qc_counts(run)
    descriptions = [describe_contrast(run.contrasts[name], model) for name, model in run.models.items()]
    calibration = [
        {"name": name, **permutations_run(path)}
        for name, path in run.inputs.each("calibration_summary").items()
    ]
    predicted_groupings = groupings(run)
    values = {
        "pipeline_version": version_label(run.software["workflow"]),
        "versions": run.software["packages"],
        "design": config["design"],
        "filter": config["filter"],
        "de": config["de"],
        "n_samples_in": int(summary["samples in"]),
        "qc_summary": qc_sentence(counts["flagged"], counts["excluded"], counts["kept"]),
        "n_genes_in": int(summary["genes in"]),
        "n_genes_kept": int(summary["genes kept"]),
        "coding": describe_coding(next(iter(run.models.values()))),
        "contrasts": "; ".join(descriptions),
        "provenance": provenance_entries(run.inputs.readmes),
        "enrichment": config["enrichment"],
        "camera": bool(run.inputs.each("camera")),
        "calibration": {"seed": config["calibration"]["seed"], "contrasts": calibration},
        "prediction": prediction_settings(config["predict"], config["seed"], predicted_groupings)
        if predicted_groupings
        else None,
        "robustness": (
            {
                **config["cells"],
                "models": list(active_models(config["sensitivity"], config["cells"])),
                "covariates": covariates_chosen(run),
            }
            if concordance_files(run)
            else None
        ),
    }
    return {"toc": [{"anchor": "methods", "label": "Methods"}], "settings": values, "references": REFERENCES}
