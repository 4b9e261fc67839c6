"""Simulate a blood-transcriptome cohort of TRD patients and antidepressant responders.

The cohort has a known answer: every gene's true log2 fold change (TRD vs
responder), whole pathways shifted coherently, and three planted QC hazards.
It is deterministic for a given seed: the bundled toy cohort in resources/toy/
is this module's output with the defaults, and a test regenerates it byte for byte.

Counts are negative binomial with a DESeq2-like mean-dispersion trend
(alpha = a1 / mean + a0, log-normal scatter), per-sample size factors, and
effects of group, site, sex (X/Y genes) and age. Three features make it behave
like real whole blood rather than like independent genes:

- co-expression: latent per-sample factors, independent of group, shared by the
  genes of GO BP sets (modules) and by broad random gene sets, so that genes of a
  pathway are correlated as in real blood data;
- cell composition: per-sample proportions of eleven blood cell types whose means
  differ between TRD and responders; marker genes follow their type's proportion
  and nothing else (class `composition`), while regulated genes differ within cells
  (class `regulated`);
- heterogeneity: the within-cell group effects of a patient scale with a per-patient
  signature strength (mean 1 in TRD, 0 in responders), and its cell shifts with a second,
  independent one, so group means differ as planted but no patient is classified with
  certainty, and the cell shares do not stand in for the within-cell signature.

Given the miRNA annotation and the candidate-variant list, the cohort also gets a small-RNA layer,
genotypes with a planted cis-eQTL and a polygenic score (trdpipe.simulate_layers), each drawn from
its own random stream: the mRNA layer stays as it is without them, but for the eQTL gene's counts.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from trdpipe import simulate_layers as other_layers
from trdpipe.common import atomic_output, deterministic_gzip
from trdpipe.io.genesets import read_gmt

SEX_GENES_FEMALE = ["XIST"]
SEX_GENES_MALE = ["RPS4Y1", "DDX3Y", "KDM5D", "UTY", "EIF1AY"]
GLOBIN_GENES = ["HBA1", "HBA2", "HBB", "HBD", "HBM", "HBQ1"]
# Effects reported in the depression literature (log2 fold change TRD vs responder).
LITERATURE_EFFECTS = {
    "IL1B": 0.8,
    "TNF": 0.6,
    "IL6": 0.7,
    "MIF": 0.5,
    "P2RX7": 0.6,
    "GZMB": -0.8,
    "PRF1": -0.7,
    "NKG7": -0.7,
    "KLRD1": -0.6,
    "NR3C1": -0.5,
    "FKBP5": 0.6,
    "BDNF": -0.6,
    "VGF": -0.5,
    "SLC6A4": -0.5,
    "HTR1A": 0.0,
    "HTR2B": 0.0,
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
# Blood cell types: canonical marker genes (expressed by that type alone, to a first
# approximation), mean share of whole-blood mRNA, and log2 shift of the mean share in TRD
# at signature strength 1 (lymphoid cytotoxic cells lower, myeloid cells higher).
CELL_MARKERS = {
    "neutrophils": [
        "FCGR3B",
        "CSF3R",
        "CXCR2",
        "CXCR1",
        "FPR1",
        "CMTM2",
        "PROK2",
        "MME",
        "ALPL",
        "S100P",
        "KCNJ15",
        "TNFRSF10C",
    ],
    "eosinophils": ["CLC", "IL5RA", "CCR3", "SIGLEC8", "PRG2", "EPX", "ALOX15", "HRH4"],
    "monocytes": ["CD14", "CSF1R", "FCN1", "VCAN", "CD163", "MS4A7", "CD300E", "CCR2"],
    "B_cells": ["CD19", "MS4A1", "CD79A", "CD79B", "CD22", "BANK1", "FCRL1", "PAX5", "BLK", "FCRLA"],
    "plasma_cells": ["JCHAIN", "MZB1", "TNFRSF17", "TXNDC5", "SDC1", "DERL3"],
    "CD4_T": ["CD4", "CD40LG", "ANKRD55", "ICOS", "TRAT1", "CCR4"],
    "CD8_T": ["CD8A", "CD8B", "CRTAM", "NELL2", "S100B"],
    "NK": ["NCAM1", "KLRF1", "SH2D1B", "NCR1", "KIR2DL1", "KIR3DL1", "KLRC1"],
    "dendritic": ["CLEC4C", "LILRA4", "IL3RA", "CD1C", "FCER1A", "CLEC10A"],
    "platelets": ["PPBP", "PF4", "ITGA2B", "GP9", "TUBB1", "CLEC1B"],
    "erythroid": ["ALAS2", "CA1", "SLC4A1", "GYPA", "AHSP", "EPB42"],
}
CELL_MEAN_SHARES = {
    "neutrophils": 0.55,
    "eosinophils": 0.03,
    "monocytes": 0.07,
    "B_cells": 0.05,
    "plasma_cells": 0.005,
    "CD4_T": 0.14,
    "CD8_T": 0.08,
    "NK": 0.04,
    "dendritic": 0.01,
    "platelets": 0.015,
    "erythroid": 0.01,
}
DEFAULT_CELL_SHIFTS = {"NK": -1.0, "CD8_T": -1.0, "B_cells": -1.0, "monocytes": 0.9}


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
    trd_bmi_shift: float = 1.5
    literature_effects: bool = True
    # per-patient strengths, N(1, sd) in TRD and N(0, sd) in responders: of the within-cell
    # signature, and (drawn independently) of the cell-share shifts
    signature_sd: float = 0.7
    cell_signature_sd: float = 0.7
    cell_shifts: dict = field(default_factory=lambda: dict(DEFAULT_CELL_SHIFTS))
    cell_share_sd: float = 0.3  # natural-log scale, per sample and cell type
    marker_background: float = 0.1  # share of a marker's expression that is not from its type
    neutrophil_measurement_sd: float = 0.02
    # co-expression: modules on GO BP sets, and broad factors on random genes
    n_modules: int = 40
    module_size: tuple[int, int] = (15, 200)  # members among the simulated genes
    module_loading: float = 0.35  # log2 per SD of the module factor
    module_loading_sd: float = 0.1
    n_broad_factors: int = 3
    broad_share: float = 0.3
    broad_loading_sd: float = 0.15
    dispersion_a0: float = 0.06
    dispersion_a1: float = 2.0
    dispersion_scatter_sd: float = 0.4
    hazards: bool = True
    # a sequencing batch (column `batch`, levels A and B) when set: the share of TRD in batch A is
    # (1 + it) / 2 and of responders (1 - it) / 2, so 0 balances it and 1 makes it the group; it
    # shifts a third of genes by N(0, batch_effect_sd) log2 in batch B. None: no batch (the toy)
    batch_confounding: float | None = None
    batch_effect_sd: float = 0.5
    pathways: tuple = DEFAULT_PATHWAYS
    null_themes: tuple = DEFAULT_NULL_THEMES
    # the small-RNA, genotype and polygenic-score layers (trdpipe.simulate_layers); their random
    # numbers are their own, so they leave the mRNA layer as it is but for the eQTL gene
    layers: other_layers.LayerParameters = field(default_factory=other_layers.LayerParameters)

    @classmethod
    def null_cohort(cls, **overrides) -> "SimulationParameters":
        """No group effect of any kind (genes, pathways, cells, clinical), the same correlation."""
        null = dict(
            frac_de=0.0,
            pathways=(),
            literature_effects=False,
            cell_shifts={},
            trd_age_shift=0.0,
            trd_bmi_shift=0.0,
            site_trd_share=(0.5, 0.5, 0.5),
            layers=other_layers.LayerParameters(prs_shift=0.0, mirna_frac_de=0.0),
        )
        return cls(**{**null, **overrides})


@dataclass
class Cohort:
    counts: pd.DataFrame  # genes x samples, int
    samples: pd.DataFrame
    truth_genes: pd.DataFrame
    truth_pathways: pd.DataFrame
    truth_hazards: pd.DataFrame
    truth_cells: pd.DataFrame
    # the other layers: None when simulate_cohort was given no miRNA annotation / candidate list
    mirna_counts: pd.DataFrame | None = None  # miRNAs x samples (two of the sheet absent)
    truth_mirna: pd.DataFrame | None = None
    mirna_targets: list | None = None  # (mirna_id, description, [Ensembl IDs])
    dosages: pd.DataFrame | None = None  # variants x samples
    truth_genotypes: pd.DataFrame | None = None


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
    bmi = np.clip(rng.normal(26.5, 4.5, n) + params.trd_bmi_shift * is_trd, 17, 45).round(1)
    width = max(len(str(n)), 3)
    return pd.DataFrame(
        {
            "sample_id": [f"PRM{i + 1:0{width}d}" for i in range(n)],
            "group": group,
            "site": site,
            "sex": sex,
            "age": age,
            "bmi": bmi,
            "RIN": rin,
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


def batch_rng(params: SimulationParameters) -> np.random.Generator:
    """The batch's own random numbers, apart from the cohort's: a cohort without a batch draws
    exactly what it drew before there was one."""
    return np.random.default_rng([params.seed, 1])


def simulate_batch(samples: pd.DataFrame, confounding: float, rng: np.random.Generator) -> np.ndarray:
    """Batch A or B per sample: (1 + confounding) / 2 of TRD and (1 - confounding) / 2 of responders
    in A (rounded), which samples at random."""
    batch = np.full(len(samples), "B", dtype=object)
    for level, share in (("TRD", (1 + confounding) / 2), ("responder", (1 - confounding) / 2)):
        members = np.flatnonzero((samples["group"] == level).to_numpy())
        in_a = int(np.floor(len(members) * share + 0.5))
        batch[rng.choice(members, size=in_a, replace=False)] = "A"
    return batch


def batch_effects(n_genes: int, batch: np.ndarray, sd: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative batch effects (genes x samples): a third of genes shift by N(0, sd) log2 in B."""
    shift = rng.normal(0, sd, n_genes) * (rng.random(n_genes) < 1 / 3)
    return np.exp2(np.outer(shift, batch == "B"))


def signature_strength(samples: pd.DataFrame, sd: float, rng) -> np.ndarray:
    """How strongly each patient carries a TRD effect: N(1, sd) in TRD, N(0, sd) in
    responders. The effects scaled by it vanish in a null cohort, which plants none."""
    is_trd = (samples["group"] == "TRD").to_numpy()
    return is_trd + rng.normal(0, sd, len(samples))


def cell_shares(
    samples: pd.DataFrame, strength: np.ndarray, params: SimulationParameters, rng
) -> pd.DataFrame:
    """Per-sample shares of whole-blood mRNA by cell type (rows sum to 1).

    Log-normal scatter around the mean shares, the TRD shift scaled by the signature
    strength, then renormalised.
    """
    types = list(CELL_MEAN_SHARES)
    log_share = np.log([CELL_MEAN_SHARES[t] for t in types])[None, :]
    shift = np.array([params.cell_shifts.get(t, 0.0) for t in types])[None, :]
    log_share = log_share + np.log(2) * shift * strength[:, None]
    log_share = log_share + rng.normal(0, params.cell_share_sd, (len(samples), len(types)))
    shares = np.exp(log_share)
    shares /= shares.sum(axis=1, keepdims=True)
    return pd.DataFrame(shares, index=samples["sample_id"].to_numpy(), columns=types)


def measured_neutrophils(shares: pd.DataFrame, params: SimulationParameters, rng) -> np.ndarray:
    """A blood count's neutrophil fraction: the planted share with measurement noise."""
    measured = shares["neutrophils"].to_numpy() + rng.normal(0, params.neutrophil_measurement_sd, len(shares))
    return np.clip(measured, 0.05, 0.95).round(3)


def choose_genes(
    annotation: pd.DataFrame, gene_sets: dict, params: SimulationParameters, rng: np.random.Generator
) -> pd.DataFrame:
    """Real protein-coding genes: the required marker genes, the planted pathways, then random ones."""
    annotation = annotation.dropna(subset=["gene_symbol", "chromosome"])
    annotation = annotation.drop_duplicates("gene_symbol").set_index("gene_symbol", drop=False)
    mito = list(annotation.index[annotation["chromosome"] == "MT"])
    required = SEX_GENES_FEMALE + SEX_GENES_MALE + GLOBIN_GENES + mito + list(LITERATURE_EFFECTS)
    required += [gene for markers in CELL_MARKERS.values() for gene in markers]
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


def marker_cell_types(genes: pd.DataFrame) -> np.ndarray:
    """The cell type whose marker each gene is ('' for none)."""
    of_gene = {gene: cell for cell, markers in CELL_MARKERS.items() for gene in markers}
    return genes["gene_symbol"].map(of_gene).fillna("").to_numpy(dtype=object)


def fixed_genes(genes: pd.DataFrame) -> np.ndarray:
    """Genes whose expression is set by sex, globin, mitochondria or cell type alone."""
    symbols = genes["gene_symbol"].to_numpy()
    fixed = np.isin(symbols, SEX_GENES_FEMALE + SEX_GENES_MALE + GLOBIN_GENES)
    fixed |= (genes["chromosome"] == "MT").to_numpy()
    return fixed | (marker_cell_types(genes) != "")


def true_group_effects(
    genes: pd.DataFrame, gene_sets: dict, params: SimulationParameters, rng: np.random.Generator
) -> pd.DataFrame:
    """True within-cell log2 fold change TRD vs responder per gene, and where each comes from."""
    symbols = genes["gene_symbol"].to_numpy()
    lfc = np.zeros(len(genes))
    source = np.full(len(genes), "none", dtype=object)
    protected = fixed_genes(genes)
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

    if params.literature_effects:
        for symbol, effect in LITERATURE_EFFECTS.items():
            hit = symbols == symbol
            lfc[hit] = effect
            source[hit] = "literature"
    return pd.DataFrame(
        {
            "gene_id": genes["gene_id"],
            "gene_symbol": genes["gene_symbol"],
            "true_log2FC": lfc.round(4),
            "source": source,
        }
    )


def composition_effects(
    genes: pd.DataFrame, shares: pd.DataFrame, params: SimulationParameters
) -> np.ndarray:
    """log2 expression of every gene from the cell shares (genes x samples; 0 for non-markers).

    A marker's expression is its type's share relative to the mean share, plus a constant
    background (`marker_background`) from other cells.
    """
    cell_of_gene = marker_cell_types(genes)
    effects = np.zeros((len(genes), len(shares)))
    background = params.marker_background
    for cell in shares.columns:
        relative = shares[cell].to_numpy() / CELL_MEAN_SHARES[cell]
        effects[cell_of_gene == cell] = np.log2((1 - background) * relative + background)
    return effects


def classify_genes(
    truth: pd.DataFrame,
    genes: pd.DataFrame,
    composition: np.ndarray,
    samples: pd.DataFrame,
    params: SimulationParameters,
) -> pd.DataFrame:
    """Add `class`, `cell_type` and `is_de`.

    `composition`: markers of a cell type whose share differs between the groups; their fold
    change is the one that shift gives this cohort (ratio of the group means of their
    expression). Markers of the other types vary with their type's share but not with group
    (true fold change 0): `null`, like every gene without a planted group effect.
    `regulated`: a group effect within cells.
    """
    cell_type = marker_cell_types(genes)
    is_marker = cell_type != ""
    is_trd = (samples["group"] == "TRD").to_numpy()
    composition_driven = is_marker & np.array([params.cell_shifts.get(t, 0.0) != 0 for t in cell_type])
    linear = np.exp2(composition[composition_driven])
    truth = truth.copy()
    truth.loc[composition_driven, "true_log2FC"] = np.log2(
        linear[:, is_trd].mean(axis=1) / linear[:, ~is_trd].mean(axis=1)
    ).round(4)
    truth.loc[is_marker, "source"] = "composition"
    regulated = (truth["true_log2FC"].to_numpy() != 0) & ~is_marker
    truth["class"] = np.where(composition_driven, "composition", np.where(regulated, "regulated", "null"))
    truth["cell_type"] = cell_type
    truth["is_de"] = regulated | composition_driven
    return truth[["gene_id", "gene_symbol", "true_log2FC", "is_de", "class", "cell_type", "source"]]


def coexpression_effects(
    genes: pd.DataFrame, n_samples: int, gene_sets: dict, params: SimulationParameters, rng
) -> np.ndarray:
    """log2 effects of latent factors (genes x samples), independent of group.

    Modules: `n_modules` GO BP sets with `module_size` members among the simulated genes;
    each has one factor, on which its members load positively. Broad factors: each on a
    random `broad_share` of genes, with loadings of either sign (like unmodelled batch or
    sample-handling effects). Sex, globin, mitochondrial and marker genes load on none.
    """
    free = ~fixed_genes(genes)
    row_of = {symbol: row for row, symbol in enumerate(genes["gene_symbol"]) if free[row]}
    low, high = params.module_size
    candidates = []
    for members in gene_sets.get("GO_BP", {}).values():
        rows = sorted({row_of[g] for g in members if g in row_of})
        if low <= len(rows) <= high:
            candidates.append(rows)
    chosen = rng.choice(len(candidates), size=min(params.n_modules, len(candidates)), replace=False)
    effects = np.zeros((len(genes), n_samples))
    for index in np.sort(chosen):
        rows = candidates[index]
        loading = rng.normal(params.module_loading, params.module_loading_sd, len(rows))
        effects[rows] += np.outer(loading, rng.normal(0, 1, n_samples))
    for _ in range(params.n_broad_factors):
        members = free & (rng.random(len(genes)) < params.broad_share)
        loading = rng.normal(0, params.broad_loading_sd, members.sum())
        effects[members] += np.outer(loading, rng.normal(0, 1, n_samples))
    return effects


def baseline_log_means(genes: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Natural-log mean expression at a size factor of 1 (blood-like: globins and MT genes high)."""
    symbols = genes["gene_symbol"].to_numpy()
    log_mu = rng.normal(np.log(150), 1.6, len(genes))
    log_mu[np.isin(symbols, ["HBA1", "HBA2", "HBB"])] = np.log(rng.uniform(2e4, 5e4, 3))
    mito = (genes["chromosome"] == "MT").to_numpy()
    log_mu[mito] = np.log(rng.uniform(2e3, 1e4, mito.sum()))
    log_mu[np.isin(symbols, SEX_GENES_FEMALE + SEX_GENES_MALE)] = np.log(600)
    # markers are read at whole-blood levels well above the detection limit
    markers = marker_cell_types(genes) != ""
    log_mu[markers] = np.maximum(log_mu[markers], np.log(200))
    return np.clip(log_mu, np.log(0.5), np.log(1e5))


def mean_matrix(genes, samples, group_lfc, strength, composition, coexpression, params, rng) -> np.ndarray:
    """Expected counts (genes x samples) before size factors, from all planted effects."""
    n_genes = len(genes)
    symbols = genes["gene_symbol"].to_numpy()
    log2_effect = np.outer(group_lfc, strength) + composition + coexpression

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

    # Age: small loadings on a few percent of genes.
    age_z = ((samples["age"] - samples["age"].mean()) / samples["age"].std()).to_numpy()
    loading = rng.normal(0, 0.1, n_genes) * (rng.random(n_genes) < 0.05)
    log2_effect += np.outer(loading, age_z)
    return np.exp(baseline_log_means(genes, rng))[:, None] * np.exp2(log2_effect)


def gene_dispersions(base_mean: np.ndarray, params: SimulationParameters, rng) -> np.ndarray:
    """DESeq2-like trend alpha = a1 / mean + a0 with log-normal scatter around it."""
    trend = params.dispersion_a1 / base_mean + params.dispersion_a0
    return trend * np.exp(rng.normal(0, params.dispersion_scatter_sd, len(base_mean)))


def plant_hazards(
    samples: pd.DataFrame, size_factors: np.ndarray, mu: np.ndarray, genes: pd.DataFrame, rng
) -> pd.DataFrame:
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


def simulate_cohort(
    annotation: pd.DataFrame,
    gene_sets: dict,
    params: SimulationParameters | None = None,
    mirna_annotation: pd.DataFrame | None = None,
    candidates: pd.DataFrame | None = None,
) -> Cohort:
    """Simulate counts, sample sheet and ground truth for one cohort; with `mirna_annotation`
    (resources/annotation/mirna.tsv.gz) a small-RNA layer, with `candidates`
    (resources/genotypes/candidate_variants.tsv) genotypes and a planted cis-eQTL."""
    params = params or SimulationParameters()
    rng = np.random.default_rng(params.seed)
    samples = simulate_samples(params, rng)
    strength = signature_strength(samples, params.signature_sd, rng)
    shares = cell_shares(samples, signature_strength(samples, params.cell_signature_sd, rng), params, rng)
    samples["neutrophil_fraction"] = measured_neutrophils(shares, params, rng)
    genes = choose_genes(annotation, gene_sets, params, rng)
    truth = true_group_effects(genes, gene_sets, params, rng)
    composition = composition_effects(genes, shares, params)
    coexpression = coexpression_effects(genes, len(samples), gene_sets, params, rng)
    mu = mean_matrix(
        genes, samples, truth["true_log2FC"].to_numpy(), strength, composition, coexpression, params, rng
    )
    if params.batch_confounding is not None:
        extra = batch_rng(params)
        samples["batch"] = simulate_batch(samples, params.batch_confounding, extra)
        mu = mu * batch_effects(len(genes), samples["batch"].to_numpy(), params.batch_effect_sd, extra)
    truth = classify_genes(truth, genes, composition, samples, params)
    size_factors = np.exp(rng.normal(0, 0.25, len(samples)))
    hazards = (
        plant_hazards(samples, size_factors, mu, genes, rng)
        if params.hazards
        else pd.DataFrame(columns=["sample_id", "hazard", "detail"])
    )
    alpha = gene_dispersions(mu.mean(axis=1), params, rng)
    mu = mu * size_factors[None, :]
    # Negative binomial as a gamma-Poisson mixture: variance mu + alpha * mu^2.
    shape = 1.0 / alpha[:, None]
    counts = rng.poisson(rng.gamma(shape, mu / shape))
    # --- the other layers, each from its own random stream (trdpipe.simulate_layers) ---
    lp, sample_ids = params.layers, samples["sample_id"].to_numpy()
    samples["prs"] = other_layers.polygenic_score(samples, lp.prs_shift, params.seed)
    dosages = truth_genotypes = None
    if candidates is not None:
        truth_genotypes = other_layers.genotype_truth(candidates, lp, params.seed)
        dosages = other_layers.draw_dosages(truth_genotypes, sample_ids, params.seed)
        eqtl = truth_genotypes[truth_genotypes["eqtl_log2_per_allele"] != 0]
        for _, variant in eqtl.iterrows():
            row = int(np.flatnonzero(genes["gene_symbol"].to_numpy() == variant["gene"])[0])
            other_layers.plant_eqtl(
                counts,
                mu,
                row,
                dosages.loc[variant["variant_id"]].to_numpy(),
                lp,
                lambda mean: params.dispersion_a1 / mean + params.dispersion_a0,
                params.seed,
            )
    counts = pd.DataFrame(counts, index=genes["gene_id"].to_numpy(), columns=samples["sample_id"])
    counts.index.name = "gene_id"
    truth_pathways = pd.DataFrame(
        [(c, t, "up" if s > 0 else "down", s) for c, t, s in params.pathways]
        + [(c, t, "none", 0.0) for c, t in params.null_themes],
        columns=["collection", "term", "direction", "shift"],
    )
    truth_cells = shares.round(5).rename_axis("sample_id").reset_index()
    cohort = Cohort(counts, samples, truth, truth_pathways, hazards, truth_cells)
    cohort.dosages, cohort.truth_genotypes = dosages, truth_genotypes
    if mirna_annotation is not None:
        simulate_mirna_layer(cohort, mirna_annotation, strength, params)
    return cohort


def simulate_mirna_layer(cohort: Cohort, annotation: pd.DataFrame, strength, params) -> None:
    """The small-RNA counts, truth and target sets of a cohort (in place)."""
    lp = params.layers
    mirnas = other_layers.choose_mirnas(annotation, lp, params.seed)
    log2_share, lfc = other_layers.mirna_effects(mirnas, lp, params.seed)
    targets, planted = other_layers.mirna_targets(mirnas, lfc, cohort.truth_genes, lp, params.seed)
    sample_ids = cohort.samples["sample_id"].to_numpy()
    counts, kept = other_layers.mirna_counts(log2_share, lfc, strength, sample_ids, lp, params.seed)
    cohort.mirna_counts = pd.DataFrame(counts, index=mirnas["mirna_id"].to_numpy(), columns=sample_ids[kept])
    cohort.mirna_counts.index.name = "mirna_id"
    direction = np.where(lfc > 0, "up", np.where(lfc < 0, "down", "none"))
    cohort.truth_mirna = pd.DataFrame(
        {
            "mirna_id": mirnas["mirna_id"],
            "family": mirnas["family"],
            "log2FoldChange": lfc,
            "is_de": lfc != 0,
            "direction": direction,
            "n_targets": [len(t) for t in targets],
            "n_planted_targets": planted,
        }
    )
    descriptions = [
        f"toy targets: {k} planted (true mRNA effect {'down' if d == 'up' else 'up'}), {len(t) - k} random"
        if d != "none"
        else f"toy targets: {len(t)} random"
        for t, k, d in zip(targets, planted, direction)
    ]
    cohort.mirna_targets = list(zip(mirnas["mirna_id"], descriptions, targets))


def cohort_files(cohort: Cohort) -> dict[str, bytes]:
    """The files of a cohort, by name, as the bytes written to disk."""
    tsv = dict(sep="\t", lineterminator="\n")
    files = {
        "counts.tsv.gz": deterministic_gzip(cohort.counts.to_csv(**tsv)),
        "samples.tsv": cohort.samples.to_csv(index=False, **tsv).encode(),
        "truth_genes.tsv": cohort.truth_genes.to_csv(index=False, **tsv).encode(),
        "truth_pathways.tsv": cohort.truth_pathways.to_csv(index=False, **tsv).encode(),
        "truth_hazards.tsv": cohort.truth_hazards.to_csv(index=False, **tsv).encode(),
        "truth_cells.tsv": cohort.truth_cells.to_csv(index=False, **tsv).encode(),
    }
    if cohort.mirna_counts is not None:
        files["mirna_counts.tsv.gz"] = deterministic_gzip(cohort.mirna_counts.to_csv(**tsv))
        files["truth_mirna.tsv"] = cohort.truth_mirna.to_csv(index=False, **tsv).encode()
        files["mirna_targets.gmt"] = other_layers.gmt_text(*zip(*cohort.mirna_targets)).encode()
    if cohort.dosages is not None:
        vcf, index = other_layers.bgzip_and_index(
            other_layers.vcf_text(cohort.truth_genotypes, cohort.dosages)
        )
        files["genotypes.vcf.gz"], files["genotypes.vcf.gz.tbi"] = vcf, index
        files["truth_genotypes.tsv"] = cohort.truth_genotypes.to_csv(index=False, **tsv).encode()
    return files


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
