"""Simulate a blood-transcriptome cohort of TRD patients and antidepressant responders.

The cohort has a known answer: every gene's true log2 fold change (TRD vs
responder), whole pathways shifted coherently, and three planted QC hazards.
It is deterministic for a given seed: the bundled toy cohort in resources/toy/
is this module's output with the defaults, and a test regenerates it byte for byte.

Counts are negative binomial with a DESeq2-like mean-dispersion trend
(alpha = a1 / mean + a0, log-normal scatter), per-sample size factors, and
effects of group, site, sex (X/Y genes), age and neutrophil fraction.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from genesets import read_gmt
from pipeline_common import atomic_output, deterministic_gzip

SEX_GENES_FEMALE = ["XIST"]
SEX_GENES_MALE = ["RPS4Y1", "DDX3Y", "KDM5D", "UTY", "EIF1AY"]
GLOBIN_GENES = ["HBA1", "HBA2", "HBB", "HBD", "HBM", "HBQ1"]
# Effects reported in the depression literature (log2 fold change TRD vs responder).
LITERATURE_EFFECTS = {
    "IL1B": 0.8, "TNF": 0.6, "IL6": 0.7, "MIF": 0.5, "P2RX7": 0.6,
    "GZMB": -0.8, "PRF1": -0.7, "NKG7": -0.7, "KLRD1": -0.6,
    "NR3C1": -0.5, "FKBP5": 0.6,
    "BDNF": -0.6, "VGF": -0.5,
    "SLC6A4": -0.5,
    "HTR1A": 0.0, "HTR2B": 0.0,
}
# Planted pathway shifts: (collection, term, mean log2 shift of every member gene).
DEFAULT_PATHWAYS = (
    ("curated_TRD", "TRD_INFLAMMATION_INNATE_IMMUNITY", 0.45),
    ("curated_TRD", "TRD_NK_CYTOTOXIC", -0.45),
    ("GO_BP", "GO:0002495", -0.4),  # antigen presentation via MHC class II (immune response down)
)
# Themes planted to have no effect: none of their genes is DE except literature genes.
DEFAULT_NULL_THEMES = (
    ("curated_TRD", "TRD_SEROTONIN_SIGNALLING"),
    ("curated_TRD", "TRD_CIRCADIAN_CLOCK"),
)


@dataclass
class SimulationParameters:
    n_samples: int = 48
    n_genes: int = 6000
    seed: int = 20250601
    frac_de: float = 0.10
    frac_female: float = 0.65
    site_sizes: tuple[float, ...] = (0.5, 0.3, 0.2)
    site_trd_share: tuple[float, ...] = (0.6, 0.45, 0.3)  # partial confounding of site and group
    trd_age_shift: float = 4.0
    trd_neutrophil_shift: float = 0.04
    dispersion_a0: float = 0.06
    dispersion_a1: float = 2.0
    dispersion_scatter_sd: float = 0.4
    hazards: bool = True
    pathways: tuple = DEFAULT_PATHWAYS
    null_themes: tuple = DEFAULT_NULL_THEMES


@dataclass
class Cohort:
    counts: pd.DataFrame  # genes x samples, int
    samples: pd.DataFrame
    truth_genes: pd.DataFrame
    truth_pathways: pd.DataFrame
    truth_hazards: pd.DataFrame
    files: dict = field(default_factory=dict)


def simulate_samples(params: SimulationParameters, rng: np.random.Generator) -> pd.DataFrame:
    """Sample sheet: balanced groups, unequal sites partly confounded with group."""
    n = params.n_samples
    n_trd = n // 2
    site_counts = _split_counts(n, params.site_sizes)
    site_names = [f"site{chr(ord('A') + i)}" for i in range(len(site_counts))]
    trd_per_site = _split_counts(n_trd, np.array(params.site_trd_share) * site_counts)
    group, site = [], []
    for name, size, trd in zip(site_names, site_counts, trd_per_site):
        trd = min(trd, size)
        group += ["TRD"] * trd + ["responder"] * (size - trd)
        site += [name] * size
    # Shuffle so that sample order carries no information.
    order = rng.permutation(n)
    group, site = np.array(group)[order], np.array(site)[order]
    is_trd = group == "TRD"
    sex = np.where(rng.random(n) < params.frac_female, "female", "male")
    age = np.clip(rng.normal(42, 12, n) + params.trd_age_shift * is_trd, 18, 70).round().astype(int)
    rin = np.clip(rng.normal(7.6, 0.7, n), 5.0, 10.0).round(1)
    neutrophils = np.clip(rng.normal(0.58, 0.07, n) + params.trd_neutrophil_shift * is_trd, 0.3, 0.85)
    width = max(len(str(n)), 3)
    return pd.DataFrame(
        {
            "sample_id": [f"PRM{i + 1:0{width}d}" for i in range(n)],
            "group": group,
            "site": site,
            "sex": sex,
            "age": age,
            "RIN": rin,
            "neutrophil_fraction": neutrophils.round(3),
        }
    )


def _split_counts(total: int, weights) -> np.ndarray:
    """Split an integer total in proportion to weights (largest remainder)."""
    weights = np.asarray(weights, dtype=float)
    raw = total * weights / weights.sum()
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts))[: total - counts.sum()]:
        counts[i] += 1
    return counts


def choose_genes(annotation: pd.DataFrame, gene_sets: dict, params: SimulationParameters,
                 rng: np.random.Generator) -> pd.DataFrame:
    """Real protein-coding genes: the required marker genes, the planted pathways, then random ones."""
    annotation = annotation.dropna(subset=["gene_symbol", "chromosome"])
    annotation = annotation.drop_duplicates("gene_symbol").set_index("gene_symbol", drop=False)
    mito = list(annotation.index[annotation["chromosome"] == "MT"])
    required = SEX_GENES_FEMALE + SEX_GENES_MALE + GLOBIN_GENES + mito + list(LITERATURE_EFFECTS)
    for collection, term, _ in params.pathways:
        required += list(gene_sets[collection][term])
    for collection, term in params.null_themes:
        required += list(gene_sets[collection][term])
    required = [g for g in dict.fromkeys(required) if g in annotation.index]
    pool = annotation[(annotation["gene_type"] == "protein-coding") & ~annotation.index.isin(required)]
    n_random = max(params.n_genes - len(required), 0)
    random_genes = pool.index[np.sort(rng.choice(len(pool), size=min(n_random, len(pool)), replace=False))]
    chosen = annotation.loc[required + list(random_genes), ["gene_id", "gene_symbol", "chromosome"]]
    return chosen.sort_values("gene_id").reset_index(drop=True)


def true_group_effects(genes: pd.DataFrame, gene_sets: dict, params: SimulationParameters,
                       rng: np.random.Generator) -> pd.DataFrame:
    """True log2 fold change TRD vs responder per gene, with where each effect comes from."""
    symbols = genes["gene_symbol"].to_numpy()
    lfc = np.zeros(len(genes))
    source = np.full(len(genes), "none", dtype=object)
    protected = np.isin(symbols, SEX_GENES_FEMALE + SEX_GENES_MALE + GLOBIN_GENES)
    protected |= (genes["chromosome"] == "MT").to_numpy()
    for collection, term in params.null_themes:
        protected |= np.isin(symbols, list(gene_sets[collection][term]))

    for collection, term, shift in params.pathways:
        members = np.isin(symbols, list(gene_sets[collection][term])) & ~protected
        lfc[members] = shift + rng.normal(0, 0.1, members.sum())
        source[members] = f"pathway:{term}"
    pathway_genes = source != "none"

    n_random = int(round(params.frac_de * len(genes))) - pathway_genes.sum()
    candidates = np.flatnonzero(~protected & ~pathway_genes)
    picked = rng.choice(candidates, size=max(n_random, 0), replace=False)
    # Mostly small effects: |log2FC| between 0.25 and 1, skewed towards 0.25.
    magnitude = 0.25 + 0.75 * rng.beta(1.0, 2.0, len(picked))
    lfc[picked] = magnitude * rng.choice([-1.0, 1.0], len(picked))
    source[picked] = "random"

    for symbol, effect in LITERATURE_EFFECTS.items():
        hit = symbols == symbol
        lfc[hit] = effect
        source[hit] = "literature"
    return pd.DataFrame(
        {
            "gene_id": genes["gene_id"],
            "gene_symbol": genes["gene_symbol"],
            "true_log2FC": lfc.round(4),
            "is_de": np.abs(lfc.round(4)) > 0,
            "source": source,
        }
    )


def baseline_log_means(genes: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Natural-log mean expression at a size factor of 1 (blood-like: globins and MT genes high)."""
    symbols = genes["gene_symbol"].to_numpy()
    log_mu = rng.normal(np.log(150), 1.6, len(genes))
    log_mu[np.isin(symbols, ["HBA1", "HBA2", "HBB"])] = np.log(rng.uniform(2e4, 5e4, 3))
    mito = (genes["chromosome"] == "MT").to_numpy()
    log_mu[mito] = np.log(rng.uniform(2e3, 1e4, mito.sum()))
    log_mu[np.isin(symbols, SEX_GENES_FEMALE + SEX_GENES_MALE)] = np.log(600)
    return np.clip(log_mu, np.log(0.5), np.log(1e5))


def mean_matrix(genes, samples, group_lfc, params, rng) -> np.ndarray:
    """Expected counts (genes x samples) before size factors, from all planted effects."""
    n_genes, n_samples = len(genes), len(samples)
    symbols = genes["gene_symbol"].to_numpy()
    log2_effect = np.zeros((n_genes, n_samples))
    is_trd = (samples["group"] == "TRD").to_numpy()
    log2_effect += np.outer(group_lfc, is_trd)

    # Site: a third of genes shift by site (batch / protocol differences).
    site_codes = pd.Categorical(samples["site"]).codes
    site_effects = rng.normal(0, 0.35, (n_genes, site_codes.max() + 1))
    site_effects[:, 0] = 0
    site_effects[rng.random(n_genes) > 1 / 3] = 0
    log2_effect += site_effects[:, site_codes]

    # Sex: XIST only in females, Y genes only in males, a few X genes mildly female-biased.
    is_female = (samples["sex"] == "female").to_numpy()
    log2_effect[np.isin(symbols, SEX_GENES_FEMALE)] += np.where(is_female, 0, -10)
    log2_effect[np.isin(symbols, SEX_GENES_MALE)] += np.where(is_female, -10, 0)
    x_genes = (genes["chromosome"] == "X").to_numpy() & ~np.isin(symbols, SEX_GENES_FEMALE)
    log2_effect[x_genes] += np.outer(rng.normal(0.15, 0.1, x_genes.sum()), is_female)

    # Age and neutrophil fraction: small loadings on a few percent of genes.
    age_z = ((samples["age"] - samples["age"].mean()) / samples["age"].std()).to_numpy()
    neut_z = ((samples["neutrophil_fraction"] - 0.58) / 0.07).to_numpy()
    for covariate, share, scale in ((age_z, 0.05, 0.1), (neut_z, 0.04, 0.12)):
        loading = rng.normal(0, scale, n_genes) * (rng.random(n_genes) < share)
        log2_effect += np.outer(loading, covariate)
    return np.exp(baseline_log_means(genes, rng))[:, None] * np.exp2(log2_effect)


def gene_dispersions(base_mean: np.ndarray, params: SimulationParameters, rng) -> np.ndarray:
    """DESeq2-like trend alpha = a1 / mean + a0 with log-normal scatter around it."""
    trend = params.dispersion_a1 / base_mean + params.dispersion_a0
    return trend * np.exp(rng.normal(0, params.dispersion_scatter_sd, len(base_mean)))


def plant_hazards(samples: pd.DataFrame, size_factors: np.ndarray, mu: np.ndarray,
                  genes: pd.DataFrame, rng) -> pd.DataFrame:
    """Plant a sex swap (sheet only), a tiny library and a globin-dominated sample."""
    chosen = rng.choice(len(samples), size=3, replace=False)
    swap, tiny, globin = (int(i) for i in chosen)
    recorded = samples.at[swap, "sex"]
    samples.at[swap, "sex"] = "male" if recorded == "female" else "female"
    size_factors[tiny] *= 0.04
    globin_rows = genes["gene_symbol"].isin(["HBA1", "HBA2", "HBB"]).to_numpy()
    mu[globin_rows, globin] *= 25
    return pd.DataFrame(
        {
            "sample_id": samples["sample_id"].iloc[[swap, tiny, globin]].to_numpy(),
            "hazard": ["sex_mismatch", "low_library_size", "high_globin"],
            "detail": [
                f"recorded sex {samples.at[swap, 'sex']}, expression {recorded}",
                "library size x0.04",
                "HBA1/HBA2/HBB expression x25",
            ],
        }
    )


def simulate_cohort(annotation: pd.DataFrame, gene_sets: dict,
                    params: SimulationParameters | None = None) -> Cohort:
    """Simulate counts, sample sheet and ground truth for one cohort."""
    params = params or SimulationParameters()
    rng = np.random.default_rng(params.seed)
    samples = simulate_samples(params, rng)
    genes = choose_genes(annotation, gene_sets, params, rng)
    truth = true_group_effects(genes, gene_sets, params, rng)
    mu = mean_matrix(genes, samples, truth["true_log2FC"].to_numpy(), params, rng)
    size_factors = np.exp(rng.normal(0, 0.25, len(samples)))
    hazards = (plant_hazards(samples, size_factors, mu, genes, rng) if params.hazards
               else pd.DataFrame(columns=["sample_id", "hazard", "detail"]))
    alpha = gene_dispersions(mu.mean(axis=1), params, rng)
    mu = mu * size_factors[None, :]
    # Negative binomial as a gamma-Poisson mixture: variance mu + alpha * mu^2.
    shape = 1.0 / alpha[:, None]
    counts = rng.poisson(rng.gamma(shape, mu / shape))
    counts = pd.DataFrame(counts, index=genes["gene_id"].to_numpy(), columns=samples["sample_id"])
    counts.index.name = "gene_id"
    truth_pathways = pd.DataFrame(
        [(c, t, "up" if s > 0 else "down", s) for c, t, s in params.pathways]
        + [(c, t, "none", 0.0) for c, t in params.null_themes],
        columns=["collection", "term", "direction", "shift"],
    )
    return Cohort(counts, samples, truth, truth_pathways, hazards)


def cohort_files(cohort: Cohort) -> dict[str, bytes]:
    """The files of a cohort, by name, as the bytes written to disk."""
    tsv = dict(sep="\t", lineterminator="\n")
    return {
        "counts.tsv.gz": deterministic_gzip(cohort.counts.to_csv(**tsv)),
        "samples.tsv": cohort.samples.to_csv(index=False, **tsv).encode(),
        "truth_genes.tsv": cohort.truth_genes.to_csv(index=False, **tsv).encode(),
        "truth_pathways.tsv": cohort.truth_pathways.to_csv(index=False, **tsv).encode(),
        "truth_hazards.tsv": cohort.truth_hazards.to_csv(index=False, **tsv).encode(),
    }


def write_cohort(cohort: Cohort, outdir: str | Path) -> None:
    for name, payload in cohort_files(cohort).items():
        with atomic_output(Path(outdir) / name) as tmp:
            tmp.write_bytes(payload)


def load_gene_sets(collections: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    """{collection: {term: genes}} from GMT files, without size limits."""
    return {
        name: {term: genes for term, (_, genes) in read_gmt(path).items()}
        for name, path in collections.items()
    }


def main(smk) -> None:
    params = SimulationParameters(
        n_samples=int(smk.params.n_samples),
        n_genes=int(smk.params.n_genes),
        seed=int(smk.params.seed),
    )
    annotation = pd.read_csv(smk.input.annotation, sep="\t", dtype=str)
    gene_sets = load_gene_sets(dict(smk.params.collections))
    cohort = simulate_cohort(annotation, gene_sets, params)
    write_cohort(cohort, Path(smk.output.counts).parent)


if "snakemake" in globals():
    from pipeline_common import run_script

    run_script(main, snakemake)  # noqa: F821
