"""Cost of the genotype rules (genotypes, genotype_eqtl, genotype_association) at a cohort's size.

A temporary folder gets a simulated cohort: a sample sheet of --samples samples (the toy's design
columns), a bgzipped, indexed VCF (pysam) of --variants variants on the three candidate genes (GT and
DS per sample; the first listed, the rest user variants), the blind VST of --genes genes (the three
candidate genes among them, with a planted eQTL) as the vst rule writes it, and the cohort's obs as
ingest writes them. Each rule's script then runs its main() in a child process of its own:

    .venv/bin/python bench/bench_genotypes.py --samples 300 --genes 20000 --variants 40

Each line gives the rule, the child's CPU seconds and peak RSS (MB) and its wall seconds, imports
included, as in a job (on a shared machine the CPU seconds are the steadier measure).
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import anndata as ad
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "workflow" / "lib"), str(ROOT / "tests")]

DESIGN = "~ site + sex + age + group"
CONTRAST = {"variable": "group", "test": "TRD", "reference": "responder"}
GENES = {"HTR1A": ("chr5", 63_950_000), "HTR2B": ("chr2", 231_100_000), "SLC6A4": ("chr17", 30_200_000)}
RULES = ("genotypes", "genotype_eqtl", "genotype_association")


def write_inputs(folder: Path, samples: int, genes: int, variants: int, seed: int = 1) -> None:
    import pysam

    rng = np.random.default_rng(seed)
    ids = [f"P{i:04d}" for i in range(samples)]
    obs = pd.DataFrame(
        {
            "group": rng.choice(["TRD", "responder"], samples),
            "site": rng.choice(["siteA", "siteB", "siteC"], samples),
            "sex": rng.choice(["female", "male"], samples),
            "age": rng.integers(20, 70, samples),
        },
        index=pd.Index(ids, name="sample_id"),
    )
    obs.to_csv(folder / "samples.tsv", sep="\t")
    rows = []
    for i in range(variants):
        gene = list(GENES)[i % 3]
        chrom, start = GENES[gene]
        rows.append((f"rs{i + 1}", gene, chrom, start + 100 * i, "GRCh38", "C", "G", "", "", ""))
    table = pd.DataFrame(
        rows,
        columns=[
            "variant_id",
            "gene",
            "chrom",
            "pos",
            "build",
            "ref",
            "alt",
            "consequence",
            "publication",
            "note",
        ],
    )
    table.iloc[:3].to_csv(folder / "list.tsv", sep="\t", index=False)
    table.iloc[3:].to_csv(folder / "user.tsv", sep="\t", index=False)
    dosages = rng.binomial(2, rng.uniform(0.05, 0.5, variants), (samples, variants))

    header = pysam.VariantHeader()
    header.add_line("##reference=GRCh38")
    for chrom in ("chr2", "chr5", "chr17"):
        header.contigs.add(chrom, length=250_000_000)
    header.formats.add("GT", 1, "String", "Genotype")
    header.formats.add("DS", "A", "Float", "Alt-allele dosage")
    for sample in ids:
        header.add_sample(sample)
    vcf_path = folder / "genotypes.vcf.gz"
    order = sorted(range(variants), key=lambda i: (rows[i][2], rows[i][3]))
    with pysam.VariantFile(str(vcf_path), "wz", header=header) as vcf:
        for i in order:
            record = vcf.new_record(
                contig=rows[i][2], start=rows[i][3] - 1, stop=rows[i][3], alleles=("C", "G")
            )
            record.id = rows[i][0]
            for s, sample in enumerate(ids):
                d = int(dosages[s, i])
                record.samples[sample]["GT"] = (int(d >= 1), int(d >= 2))
                record.samples[sample]["DS"] = (float(d),)
            vcf.write(record)
    pysam.tabix_index(str(vcf_path), preset="vcf", force=True)

    expression = rng.normal(8, 1, (samples, genes)).astype(np.float32)
    expression[:, 0] += 0.3 * dosages[:, 0]
    symbols = list(GENES) + [f"G{j}" for j in range(genes - len(GENES))]
    var = pd.DataFrame({"gene_symbol": symbols}, index=[f"ENSG{j:011d}" for j in range(genes)])
    ad.AnnData(expression, obs=obs.astype({"age": float}), var=var).write_h5ad(folder / "vst.h5ad")
    ad.AnnData(np.zeros((samples, 1), dtype=np.int64), obs=obs).write_h5ad(folder / "cohort.h5ad")


def stage(rule: str, folder: Path) -> dict:
    """Run one rule's main() here (a fresh child process); its wall and CPU seconds and peak RSS."""
    from rule_scripts import rule_script

    settings = {
        "file": str(folder / "genotypes.vcf.gz"),
        "format": "auto",
        "variants": str(folder / "user.tsv"),
    }
    settings |= {"scores": [], "max_missing": 0.1, "min_allele_count": 5}
    out = {
        "dosages": str(folder / "dosages.tsv.gz"),
        "variants": str(folder / "variants.tsv"),
        "table": str(folder / f"{rule}.tsv"),
        "figure": str(folder / "eqtl_by_genotype.png"),
    }
    inputs = {
        "samples": str(folder / "samples.tsv"),
        "candidates": str(folder / "list.tsv"),
        "vst": str(folder / "vst.h5ad"),
        "cohort": str(folder / "cohort.h5ad"),
        "dosages": out["dosages"],
        "variants": out["variants"],
    }
    smk = SimpleNamespace(
        input=SimpleNamespace(**inputs),
        output=SimpleNamespace(**out),
        params=SimpleNamespace(genotypes=settings, design=DESIGN, contrast=CONTRAST),
        log=[],
        threads=1,
    )
    rule_script(rule).main(smk)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "rule": rule,
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_mb": round(usage.ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--genes", type=int, default=20000)
    parser.add_argument("--variants", type=int, default=40)
    parser.add_argument("--stage", choices=RULES, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(stage(args.stage, Path(args.folder))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_inputs(folder, args.samples, args.genes, args.variants)
        results = []
        for rule in RULES:
            child = [sys.executable, __file__, "--stage", rule, "--folder", str(folder)]
            start = time.perf_counter()
            output = subprocess.run(child, check=True, capture_output=True, text=True).stdout
            seconds = round(time.perf_counter() - start, 2)
            results.append({**json.loads(output.strip().splitlines()[-1]), "seconds": seconds})
        table = pd.DataFrame(results).assign(samples=args.samples, genes=args.genes, variants=args.variants)
        print(table.to_string(index=False))
        eqtl = pd.read_csv(folder / "genotype_eqtl.tsv", sep="\t")
        print(
            f"eQTL tests: {eqtl['pvalue'].notna().sum()}, planted rs1 p = {eqtl.set_index('variant_id').at['rs1', 'pvalue']:.2g}"
        )


if __name__ == "__main__":
    main()
