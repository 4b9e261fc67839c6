"""The simulated cohort's other layers: small RNA, candidate-gene genotypes with a planted cis-eQTL,
and a polygenic score (trdpipe.simulate draws the mRNA layer and calls these).

Every quantity here comes from its own child generator, `np.random.default_rng([seed, k])`, never
from the mRNA stream: a cohort draws the same sheet, truth and mRNA counts with or without these
layers, except the counts of the one gene that carries the planted eQTL (redrawn from its own stream).

- Polygenic score (`prs` column of the sheet): N(+shift, 1) in TRD and N(-shift, 1) in responders,
  then standardised over the cohort; drawn given the group, so the groups do not change.
- Genotypes: the candidate variants of resources/genotypes/candidate_variants.tsv that have a
  verified GRCh38 position, plus null variants at made-up positions near HTR1A and SLC6A4 (ids
  chrom:pos:ref:alt), in Hardy-Weinberg equilibrium at stated alternative-allele frequencies, no
  missing calls. One candidate variant is a cis-eQTL: each alternative allele multiplies its gene's
  expected mRNA count by 2^effect.
- Small RNA: real human mature miRNAs (resources/annotation/mirna.tsv.gz, miRBase 22), blood-like
  abundances (miR-486-5p, miR-451a, miR-92a-3p, miR-16-5p ... dominate), negative binomial counts
  with a higher dispersion than mRNA and libraries of a few million reads; a share of miRNAs differ
  between the groups, scaled per patient by the mRNA signature strength. Each miRNA has a target
  set of toy genes; a differential miRNA's planted targets are regulated genes whose true mRNA
  effect has the opposite sign.
"""

import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# child-stream keys (np.random.default_rng([seed, key])); 1 is the batch's (trdpipe.simulate)
PRS_STREAM, GENOTYPE_STREAM, EQTL_STREAM, MIRNA_STREAM, TARGET_STREAM, MIRNA_COUNT_STREAM = 2, 3, 4, 5, 6, 7

# Blood small-RNA libraries are dominated by a few erythrocyte and platelet miRNAs: share of the
# mature-miRNA reads of a whole-blood library at the mean (a toy profile in the spirit of published
# whole-blood small-RNA sequencing, e.g. miR-486-5p and miR-451a together a third to a half).
DOMINANT_MIRNAS = {
    "hsa-miR-486-5p": 0.25,
    "hsa-miR-451a": 0.15,
    "hsa-miR-92a-3p": 0.07,
    "hsa-miR-16-5p": 0.05,
    "hsa-miR-25-3p": 0.025,
    "hsa-miR-144-3p": 0.02,
    "hsa-let-7a-5p": 0.02,
    "hsa-let-7f-5p": 0.02,
    "hsa-let-7b-5p": 0.015,
    "hsa-let-7g-5p": 0.012,
    "hsa-miR-142-3p": 0.012,
    "hsa-miR-191-5p": 0.01,
    "hsa-miR-21-5p": 0.01,
    "hsa-miR-22-3p": 0.01,
    "hsa-miR-26a-5p": 0.01,
    "hsa-miR-223-3p": 0.01,
    "hsa-miR-150-5p": 0.008,
    "hsa-miR-103a-3p": 0.006,
    "hsa-miR-126-3p": 0.006,
    "hsa-miR-185-5p": 0.005,
    "hsa-miR-181a-5p": 0.005,
    "hsa-miR-93-5p": 0.004,
    "hsa-miR-30d-5p": 0.004,
    "hsa-miR-423-5p": 0.004,
    "hsa-miR-146a-5p": 0.004,
}
# made-up null variants are placed within these GRCh38 windows (gene span +- 50 kb; spans: HTR1A
# chr5:63,957,874-63,962,507 and SLC6A4 chr17:30,194,318-30,236,002, see
# resources/genotypes/README.md)
NULL_WINDOWS = {"HTR1A": ("chr5", 63_907_874, 64_012_507), "SLC6A4": ("chr17", 30_144_318, 30_286_002)}
# GRCh38 primary-assembly lengths of the contigs a toy VCF may use
CONTIG_LENGTHS = {"chr2": 242_193_529, "chr5": 181_538_259, "chr17": 83_257_441}
CONTIG_ORDER = ["chr2", "chr5", "chr17"]


@dataclass
class LayerParameters:
    # polygenic score: group means +-prs_shift SD before standardising (weak: no confounding alarm)
    prs_shift: float = 0.25
    # genotypes
    n_null_variants: int = 20
    null_alt_frequency: tuple[float, float] = (0.05, 0.5)
    eqtl_variant: str = "rs6295"
    eqtl_log2_per_allele: float = 0.7
    # the eQTL gene's geometric-mean expected count at dosage 0 is raised to at least this: HTR1A
    # is barely expressed in blood, and an eQTL is only testable on an expressed gene
    eqtl_min_mean: float = 300.0
    # small RNA
    n_mirnas: int = 300
    mirna_frac_de: float = 0.09
    mirna_lfc: tuple[float, float] = (0.7, 1.4)  # |log2FC| of a differential miRNA, uniform
    mirna_library_size: float = 3e6  # median reads per library
    mirna_library_sd: float = 0.35  # natural-log scale
    mirna_dispersion_a0: float = 0.12
    mirna_dispersion_a1: float = 4.0
    mirna_dispersion_scatter_sd: float = 0.5
    mirna_targets: tuple[int, int] = (20, 60)
    mirna_planted_share: float = 0.6  # of a differential miRNA's target set
    n_samples_without_mirna: int = 2


def rng_for(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


# --- polygenic score -----------------------------------------------------------------------------


def polygenic_score(samples: pd.DataFrame, shift: float, seed: int) -> np.ndarray:
    """Standardised score, mean +shift in TRD and -shift in responders before standardising."""
    is_trd = (samples["group"] == "TRD").to_numpy()
    raw = rng_for(seed, PRS_STREAM).normal(0, 1, len(samples)) + np.where(is_trd, shift, -shift)
    return ((raw - raw.mean()) / raw.std(ddof=1)).round(4)


# --- genotypes -----------------------------------------------------------------------------------


def read_candidates(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


CANDIDATE_ALT_FREQUENCY = {
    # 1000 Genomes phase 3, European: rs6295 C 0.542, so G (alt) 0.458 (see the candidate list)
    "rs6295": 0.46,
}


def genotype_truth(candidates: pd.DataFrame, params: LayerParameters, seed: int) -> pd.DataFrame:
    """The toy's variants: candidates with a verified position, then made-up nulls near the genes."""
    rng = rng_for(seed, GENOTYPE_STREAM)
    placed = candidates[candidates["pos"] != ""]
    rows = [
        {
            "variant_id": row["variant_id"],
            "gene": row["gene"],
            "chrom": row["chrom"],
            "pos": int(row["pos"]),
            "ref": row["ref"],
            "alt": row["alt"],
            "alt_frequency": CANDIDATE_ALT_FREQUENCY.get(row["variant_id"], 0.2),
            "eqtl_log2_per_allele": params.eqtl_log2_per_allele
            if row["variant_id"] == params.eqtl_variant
            else 0.0,
            "in_candidate_list": True,
        }
        for _, row in placed.iterrows()
    ]
    genes = list(NULL_WINDOWS)
    taken = {(r["chrom"], r["pos"]) for r in rows}
    for k in range(params.n_null_variants):
        gene = genes[k % len(genes)]
        chrom, start, end = NULL_WINDOWS[gene]
        pos = int(rng.integers(start, end))
        while (chrom, pos) in taken:
            pos += 1
        taken.add((chrom, pos))
        ref, alt = rng.choice(list("ACGT"), size=2, replace=False)
        frequency = round(float(rng.uniform(*params.null_alt_frequency)), 3)
        rows.append(
            {
                "variant_id": f"{chrom}:{pos}:{ref}:{alt}",
                "gene": gene,
                "chrom": chrom,
                "pos": pos,
                "ref": str(ref),
                "alt": str(alt),
                "alt_frequency": frequency,
                "eqtl_log2_per_allele": 0.0,
                "in_candidate_list": False,
            }
        )
    truth = pd.DataFrame(rows)
    order = truth["chrom"].map(CONTIG_ORDER.index)
    return (
        truth.assign(_order=order)
        .sort_values(["_order", "pos"])
        .drop(columns="_order")
        .reset_index(drop=True)
    )


def draw_dosages(truth: pd.DataFrame, sample_ids, seed: int) -> pd.DataFrame:
    """Alt-allele dosages (variants x samples, 0/1/2) in Hardy-Weinberg equilibrium."""
    rng = rng_for(seed, GENOTYPE_STREAM + 100)
    dosages = rng.binomial(2, truth["alt_frequency"].to_numpy()[:, None], (len(truth), len(sample_ids)))
    return pd.DataFrame(dosages, index=truth["variant_id"].to_numpy(), columns=list(sample_ids))


def plant_eqtl(
    counts: np.ndarray,
    mu: np.ndarray,
    row: int,
    dosage: np.ndarray,
    params: LayerParameters,
    dispersion_trend,
    seed: int,
) -> None:
    """Redraw one gene's counts (in place) with the eQTL: expected count x 2^(effect x dosage), its
    level raised to `eqtl_min_mean` at dosage 0 when lower, dispersion on the trend."""
    expected = mu[row].copy()
    geometric_mean = np.exp(np.mean(np.log(np.maximum(expected, 1e-8))))
    expected *= max(1.0, params.eqtl_min_mean / geometric_mean)
    expected *= np.exp2(params.eqtl_log2_per_allele * dosage)
    alpha = dispersion_trend(expected.mean())
    rng = rng_for(seed, EQTL_STREAM)
    shape = 1.0 / alpha
    counts[row] = rng.poisson(rng.gamma(shape, expected / shape))


def vcf_text(truth: pd.DataFrame, dosages: pd.DataFrame) -> str:
    """A VCF 4.2 of the toy's calls, GRCh38, FORMAT GT:DS (unphased hard calls, DS their dosage)."""
    contigs = [c for c in CONTIG_ORDER if c in set(truth["chrom"])]
    lines = [
        "##fileformat=VCFv4.2",
        "##reference=GRCh38",
        *[f"##contig=<ID={c},length={CONTIG_LENGTHS[c]},assembly=GRCh38>" for c in contigs],
        '##FILTER=<ID=PASS,Description="All filters passed">',
        '##INFO=<ID=GENE,Number=1,Type=String,Description="Nearest candidate gene">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=DS,Number=1,Type=Float,Description="Alternative allele dosage">',
        "##source=trdpipe.simulate_layers (simulated toy cohort, CC0)",
        "\t".join(
            ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *dosages.columns]
        ),
    ]
    genotype = {0: "0/0:0", 1: "0/1:1", 2: "1/1:2"}
    for (_, variant), (_, calls) in zip(truth.iterrows(), dosages.iterrows()):
        fields = [
            variant["chrom"],
            str(variant["pos"]),
            variant["variant_id"],
            variant["ref"],
            variant["alt"],
        ]
        fields += [".", "PASS", f"GENE={variant['gene']}", "GT:DS"]
        lines.append("\t".join(fields + [genotype[int(d)] for d in calls]))
    return "\n".join(lines) + "\n"


def bgzip_and_index(text: str) -> tuple[bytes, bytes]:
    """(bgzipped VCF, its tabix index) with pysam (htslib): BGZF blocks carry no time stamp and the
    index is a function of the compressed file, so the same text gives the same bytes."""
    import pysam

    with tempfile.TemporaryDirectory() as tmp:
        plain = os.path.join(tmp, "genotypes.vcf")
        Path(plain).write_text(text)
        compressed = pysam.tabix_index(plain, preset="vcf", force=True, keep_original=False)
        return Path(compressed).read_bytes(), Path(compressed + ".tbi").read_bytes()


# --- small RNA -----------------------------------------------------------------------------------


def choose_mirnas(annotation: pd.DataFrame, params: LayerParameters, seed: int) -> pd.DataFrame:
    """The dominant blood miRNAs, then random other human mature miRNAs, in annotation order."""
    rng = rng_for(seed, MIRNA_STREAM)
    dominant = [m for m in DOMINANT_MIRNAS if m in set(annotation["mirna_id"])]
    pool = np.flatnonzero(~annotation["mirna_id"].isin(dominant).to_numpy())
    n_random = max(params.n_mirnas - len(dominant), 0)
    picked = set(annotation["mirna_id"].iloc[rng.choice(pool, size=min(n_random, len(pool)), replace=False)])
    chosen = annotation[annotation["mirna_id"].isin(picked | set(dominant))]
    return chosen[["mirna_id", "family"]].reset_index(drop=True)


def mirna_effects(mirnas: pd.DataFrame, params: LayerParameters, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(log2 mean share, true log2FC TRD vs responder) per miRNA; the dominant ones never differ."""
    rng = rng_for(seed, MIRNA_STREAM + 100)
    names = mirnas["mirna_id"].to_numpy()
    dominant = np.isin(names, list(DOMINANT_MIRNAS))
    share = np.exp(rng.normal(np.log(2e-4), 1.6, len(names)))
    share[dominant] = [DOMINANT_MIRNAS[n] for n in names[dominant]]
    rest = ~dominant
    share[rest] *= (1 - sum(DOMINANT_MIRNAS[n] for n in names[dominant])) / share[rest].sum()
    lfc = np.zeros(len(names))
    n_de = int(round(params.mirna_frac_de * len(names)))
    if n_de:
        # differential miRNAs among the expressed, non-dominant ones (a shift of miR-486 would move
        # every other miRNA's share)
        candidates = np.flatnonzero(rest & (share * params.mirna_library_size > 50))
        picked = rng.choice(candidates, size=min(n_de, len(candidates)), replace=False)
        lfc[picked] = rng.uniform(*params.mirna_lfc, len(picked)) * rng.choice([-1.0, 1.0], len(picked))
    return np.log2(share), lfc.round(4)


def mirna_targets(
    mirnas: pd.DataFrame, lfc: np.ndarray, truth_genes: pd.DataFrame, params: LayerParameters, seed: int
) -> tuple[list[list[str]], list[int]]:
    """Per miRNA its target genes (Ensembl IDs, sorted) and how many of them are planted: for a
    differential miRNA, `mirna_planted_share` of the set are regulated genes whose true effect has
    the opposite sign; the rest of every set is random genes."""
    rng = rng_for(seed, TARGET_STREAM)
    gene_ids = truth_genes["gene_id"].to_numpy()
    true_lfc = truth_genes["true_log2FC"].to_numpy()
    regulated = (truth_genes["class"] == "regulated").to_numpy()
    targets, planted_counts = [], []
    for effect in lfc:
        size = int(rng.integers(params.mirna_targets[0], params.mirna_targets[1] + 1))
        planted = np.array([], dtype=int)
        if effect != 0:
            opposite = np.flatnonzero(regulated & (np.sign(true_lfc) == -np.sign(effect)))
            n_planted = min(int(round(params.mirna_planted_share * size)), len(opposite))
            planted = rng.choice(opposite, size=n_planted, replace=False)
        others = np.setdiff1d(np.arange(len(gene_ids)), planted)
        random = rng.choice(others, size=min(size - len(planted), len(others)), replace=False)
        targets.append(sorted(gene_ids[np.concatenate([planted, random])]))
        planted_counts.append(len(planted))
    return targets, planted_counts


def mirna_counts(
    log2_share: np.ndarray,
    lfc: np.ndarray,
    strength: np.ndarray,
    sample_ids: np.ndarray,
    params: LayerParameters,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(counts miRNAs x kept samples, kept sample indices): the group effect of a patient scales
    with its signature strength; `n_samples_without_mirna` samples have no small-RNA library."""
    rng = rng_for(seed, MIRNA_COUNT_STREAM)
    n = len(sample_ids)
    missing = rng.choice(n, size=min(params.n_samples_without_mirna, n - 1), replace=False)
    kept = np.setdiff1d(np.arange(n), missing)
    library = params.mirna_library_size * np.exp(rng.normal(0, params.mirna_library_sd, n))
    relative = np.exp2(log2_share[:, None] + np.outer(lfc, strength))
    relative /= relative.sum(axis=0, keepdims=True)  # shares of a library sum to one
    mu = relative * library[None, :]
    trend = params.mirna_dispersion_a1 / mu.mean(axis=1) + params.mirna_dispersion_a0
    alpha = trend * np.exp(rng.normal(0, params.mirna_dispersion_scatter_sd, len(trend)))
    shape = 1.0 / alpha[:, None]
    counts = rng.poisson(rng.gamma(shape, mu / shape))
    return counts[:, kept], kept


def gmt_text(names, descriptions, gene_lists) -> str:
    return "".join(
        "\t".join([name, description, *genes]) + "\n"
        for name, description, genes in zip(names, descriptions, gene_lists)
    )


def read_vcf_dosages(path: str | Path) -> pd.DataFrame:
    """Dosages (variants x samples) of a VCF's DS field, read back with pysam (for the tests)."""
    import pysam

    with pysam.VariantFile(str(path)) as vcf:
        samples = list(vcf.header.samples)
        rows = {record.id: [record.samples[s]["DS"] for s in samples] for record in vcf}
    return pd.DataFrame.from_dict(rows, orient="index", columns=samples)


def tsv_bytes(table: pd.DataFrame, index: bool = False) -> bytes:
    buffer = io.StringIO()
    table.to_csv(buffer, sep="\t", index=index, lineterminator="\n")
    return buffer.getvalue().encode()
