"""Genotypes of candidate genes: reading a VCF (pysam) or a dosage table with its checks, the
candidate-gene eQTL (the planted effect found, null variants at a nominal rate, equal to R's lm) and
the association with a contrast (equal to R's glm; rare and separating variants a NaN with a reason)."""

import logging
import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from conftest import ROOT, run_snakemake
from trdpipe.common import InputError
from trdpipe.genotypes.association import association_table
from trdpipe.genotypes.eqtl import adjusted_expression, eqtl_table
from trdpipe.genotypes.reading import check_scores, read_genotypes
from trdpipe.genotypes.variants import analysed_variants, build_name
from trdpipe.report.sections.genotypes import association_sentence, eqtl_sentence

pysam = pytest.importorskip("pysam")

R_REFERENCE = ROOT / "tests/data/r_genotypes"
DESIGN = "~ site + sex + age + group"
CONTRAST = {"variable": "group", "test": "TRD", "reference": "responder"}
LIST_COLUMNS = "variant_id\tgene\tchrom\tpos\tbuild\tref\talt\tconsequence\tpublication\tnote\n"
# a provisional list of the shipped one's shape
LIST_ROWS = [
    ("rs6295", "HTR1A", "chr5", 63962738, "GRCh38", "C", "G"),
    ("rs79874540", "HTR2B", "chr2", 231109795, "GRCh38", "C", "T"),
    ("rs25531", "SLC6A4", "chr17", 30237328, "GRCh38", "A", "G"),
]


def write_list(path, rows=LIST_ROWS):
    lines = [LIST_COLUMNS] + ["\t".join(map(str, row)) + "\tx\tPMID:1\t\n" for row in rows]
    path.write_text("".join(lines))
    return str(path)


def write_vcf(path, samples, records, reference="GRCh38", index=True, with_ds=False):
    """records: (chrom, pos, id, alleles, genotypes per sample as tuples or None)."""
    header = pysam.VariantHeader()
    if reference:
        header.add_line(f"##reference={reference}")
    for chrom in ("chr2", "chr5", "chr17"):
        header.contigs.add(chrom, length=250_000_000)
    header.formats.add("GT", 1, "String", "Genotype")
    header.formats.add("DS", "A", "Float", "Alt-allele dosage")
    for sample in samples:
        header.add_sample(sample)
    with pysam.VariantFile(str(path), "wz", header=header) as vcf:
        for chrom, pos, vid, alleles, calls in records:
            record = vcf.new_record(contig=chrom, start=pos - 1, stop=pos, alleles=alleles, id=vid)
            for sample, call in zip(samples, calls, strict=True):
                record.samples[sample]["GT"] = call if call is not None else (None, None)
                if with_ds and call is not None:
                    record.samples[sample]["DS"] = (float(sum(call)) * 0.9,)
            vcf.write(record)
    if index:
        pysam.tabix_index(str(path), preset="vcf", force=True)
    return str(path)


def sample_sheet(samples):
    return pd.DataFrame({"group": ["TRD", "responder"] * (len(samples) // 2)}, index=pd.Index(samples))


SAMPLES = ["S1", "S2", "S3", "S4"]
CALLS = [(0, 0), (0, 1), (1, 1), (0, 1)]


def toy_vcf(tmp_path, **kwargs):
    records = [
        ("chr5", 63962738, "rs6295", ("C", "G"), CALLS),
        ("chr17", 30237328, "rs25531", ("G", "A"), CALLS),  # alleles swapped: read as 2 - dosage
    ]
    return write_vcf(tmp_path / "g.vcf.gz", SAMPLES, kwargs.pop("records", records), **kwargs)


def read(tmp_path, path, sheet=None, max_missing=0.1, fmt="auto"):
    variants = analysed_variants(write_list(tmp_path / "list.tsv"))
    return read_genotypes(
        path,
        fmt,
        variants,
        sample_sheet(SAMPLES) if sheet is None else sheet,
        "samples.tsv",
        max_missing,
        "list.tsv",
    )


# --- reading ------------------------------------------------------------------------------------


def test_vcf_dosages_from_gt_and_ds_and_the_absent_variant_logged(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="trd"):
        genotypes = read(tmp_path, toy_vcf(tmp_path))
    assert list(genotypes.dosages.columns) == ["rs6295", "rs25531"]
    assert genotypes.dosages["rs6295"].tolist() == [0, 1, 2, 1]
    assert genotypes.dosages["rs25531"].tolist() == [2, 1, 0, 1]
    assert genotypes.variants["alt_frequency"].tolist() == [0.5, 0.5]
    assert (
        f"variant rs79874540 (HTR2B, chr2:231109795 C>T) of list.tsv is not in {tmp_path}/g.vcf.gz; left out."
        in caplog.messages[-1].split("genotypes: ")[1]
    )
    with_ds = read(tmp_path, toy_vcf(tmp_path, with_ds=True))
    assert with_ds.dosages["rs6295"].tolist() == pytest.approx([0, 0.9, 1.8, 0.9])
    # the list's '5' is the file's 'chr5'
    plain = analysed_variants(
        write_list(tmp_path / "plain.tsv", [("rs6295", "HTR1A", "5", 63962738, "hg38", "C", "G")])
    )
    found = read_genotypes(toy_vcf(tmp_path), "vcf", plain, sample_sheet(SAMPLES), "samples.tsv", 0.1)
    assert found.dosages["rs6295"].tolist() == [0, 1, 2, 1]


def test_a_dosage_table_is_read_and_its_bad_value_named(tmp_path):
    table = tmp_path / "dosages.tsv"
    table.write_text("sample_id\trs6295\tother\nS1\t0\t1\nS2\t1.5\t1\nS3\tNA\t1\nS4\t2\t1\n")
    genotypes = read(tmp_path, str(table), max_missing=0.5)
    assert genotypes.dosages["rs6295"].tolist()[:2] == [0, 1.5]
    assert genotypes.variants["missing_rate"].tolist() == [0.25]
    table.write_text("sample_id\trs6295\nS1\t0\nS2\t3\nS3\t1\nS4\t2\n")
    with pytest.raises(InputError) as err:
        read(tmp_path, str(table))
    assert str(err.value) == (
        f"{table}: the dosage of variant rs6295 in sample S2 ('3') is not a number from 0 to 2 (1 such values "
        "in all); expected the count of alt alleles, empty or NA when not called."
    )


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            "unknown sample",
            "{vcf}: 1 sample(s) of the genotype file are not in the sample sheet samples.tsv: S4; keep only "
            "the sheet's samples (`bcftools view -S samples.txt`) or correct their IDs.",
        ),
        (
            "other build",
            "{vcf}: the file is on GRCh37 (##reference=file:///ref/hs37d5.fa.gz), the variant list list.tsv "
            "on GRCh38; lift the file over to GRCh38, or give the variants' positions on GRCh37.",
        ),
        (
            "multi-allelic",
            "{vcf}: variant rs6295 (chr5:63962738) is at a multi-allelic site (C > G,T); split it into "
            "biallelic records (`bcftools norm -m -any`).",
        ),
        (
            "missing calls",
            "{vcf}: variant(s) with more missing calls than genotypes.max_missing (10.0%) allows: "
            "rs6295 (25.0%); impute them, or remove them from the file or the list.",
        ),
        (
            "no index",
            "{vcf}: the VCF/BCF has no index (.tbi or .csi beside it); bgzip it and index it with "
            "`bcftools index -t {vcf}` (or `tabix -p vcf {vcf}`).",
        ),
        (
            "no variant",
            "{vcf}: none of the 3 variants of list.tsv (and genotypes.variants) is in the file, by position "
            "and alleles; is it the cohort's genotype file, on the list's build?",
        ),
    ],
)
def test_bad_genotype_files_stop_with_one_message(tmp_path, case, message):
    kwargs, sheet = {}, None
    if case == "unknown sample":
        sheet = sample_sheet(SAMPLES[:3] + ["S5"])
    elif case == "other build":
        kwargs["reference"] = "file:///ref/hs37d5.fa.gz"
    elif case == "multi-allelic":
        kwargs["records"] = [("chr5", 63962738, "rs6295", ("C", "G", "T"), CALLS)]
    elif case == "missing calls":
        kwargs["records"] = [("chr5", 63962738, "rs6295", ("C", "G"), [None] + CALLS[1:])]
    elif case == "no index":
        kwargs["index"] = False
    elif case == "no variant":
        kwargs["records"] = [("chr5", 100, "rs1", ("C", "G"), CALLS)]
    vcf = toy_vcf(tmp_path, **kwargs)
    with pytest.raises(InputError) as err:
        read(tmp_path, vcf, sheet=sheet)
    assert str(err.value) == message.format(vcf=vcf)


def test_a_user_variant_list_is_checked(tmp_path):
    listed = write_list(tmp_path / "list.tsv")
    user = write_list(tmp_path / "user.tsv", [("rs6295", "HTR1A", "chr5", 1, "hg38", "C", "G")])
    with pytest.raises(InputError) as err:
        analysed_variants(listed, user)
    assert (
        str(err.value)
        == f"{user}: variant(s) rs6295 are already in the candidate list {listed}; give each variant once."
    )
    user = write_list(tmp_path / "user.tsv", [("rs1", "FKBP5", "chr6", 35600000, "hg19", "C", "G")])
    with pytest.raises(InputError) as err:
        analysed_variants(listed, user)
    assert str(err.value) == (
        f"{user}: its variants are on two builds (e.g. rs1 on GRCh37 and rs6295 on GRCh38); give every position on one build."
    )
    user = write_list(tmp_path / "user.tsv", [("rs1", "FKBP5", "chr6", 35600000, "hg38", "C", "G/T")])
    with pytest.raises(InputError) as err:
        analysed_variants(listed, user)
    assert str(err.value) == (
        f"{user}: variant rs1: alt allele 'G/T' is not a sequence of A, C, G, T or N; a multi-allelic site is one "
        "row per alternative allele."
    )
    assert build_name("##contig=<ID=chr5,assembly=b37>") == "GRCh37"


def test_a_score_column_must_be_numeric(tmp_path):
    sheet = sample_sheet(SAMPLES).assign(prs=["0.1", "high", "0.3", "NA"])
    with pytest.raises(InputError) as err:
        check_scores(sheet, ["prs"], "samples.tsv")
    assert str(err.value) == (
        "samples.tsv: column prs (genotypes.scores) holds 'high' in sample S2; a polygenic score is a number "
        "(empty or NA when missing)."
    )
    with pytest.raises(InputError, match="names the column 'pgs', which the sample sheet lacks"):
        check_scores(sheet, ["pgs"], "samples.tsv")


# --- the eQTL -----------------------------------------------------------------------------------


def simulated_cohort(n, n_null, effect, seed):
    """n samples with the toy's design columns, one expressed gene with a planted cis-eQTL of
    `effect` VST units per allele (variant 'planted') and n_null variants of no effect on a
    second gene that the covariates move."""
    rng = np.random.default_rng(seed)
    obs = pd.DataFrame(
        {
            "site": rng.choice(["siteA", "siteB", "siteC"], n),
            "sex": rng.choice(["female", "male"], n),
            "age": rng.normal(45, 12, n),
            "group": rng.choice(["TRD", "responder"], n),
        },
        index=[f"S{i:03d}" for i in range(n)],
    )
    frequencies = np.r_[0.3, rng.uniform(0.05, 0.5, n_null)]
    dosages = pd.DataFrame(
        rng.binomial(2, frequencies, (n, n_null + 1)).astype(float),
        index=obs.index,
        columns=["planted"] + [f"null{i}" for i in range(n_null)],
    )
    covariate_effect = 0.5 * (obs["site"] == "siteB") + 0.3 * (obs["sex"] == "male") + 0.02 * obs["age"]
    expression = np.column_stack(
        [
            8 + covariate_effect + effect * dosages["planted"] + rng.normal(0, 0.5, n),
            6 + covariate_effect + 0.4 * (obs["group"] == "TRD") + rng.normal(0, 0.5, n),
        ]
    )
    var = pd.DataFrame({"gene_symbol": ["HTR1A", "SLC6A4"]}, index=["ENSG01", "ENSG02"])
    variants = pd.DataFrame(
        {
            "variant_id": dosages.columns,
            "gene": ["HTR1A"] + ["SLC6A4"] * n_null,
            "ref": "C",
            "alt": "G",
            "source": "list",
        }
    )
    return ad.AnnData(expression, obs=obs, var=var), dosages, variants


def test_the_planted_eqtl_is_found_and_null_variants_are_called_at_the_nominal_rate():
    vst, dosages, variants = simulated_cohort(300, 200, 0.3, seed=5)
    table = eqtl_table(vst, dosages, variants, DESIGN).set_index("variant_id")
    planted = table.loc["planted"]
    assert planted["gene_id"] == "ENSG01" and planted["n"] == 300
    assert abs(planted["beta"] - 0.3) < 2 * planted["se"]
    assert planted["padj"] < 1e-6
    nulls = table.drop("planted")
    low, high = binom.interval(0.999, len(nulls), 0.05)
    assert low <= (nulls["pvalue"] < 0.05).sum() <= high
    assert (nulls["padj"] < 0.05).sum() <= 1


def test_null_variants_are_associated_with_the_contrast_at_the_nominal_rate():
    vst, dosages, variants = simulated_cohort(300, 200, 0.0, seed=11)
    table = association_table(vst.obs, dosages, variants, [], DESIGN, CONTRAST, 5)
    assert table["pvalue"].notna().all()
    low, high = binom.interval(0.999, len(table), 0.05)
    assert low <= (table["pvalue"] < 0.05).sum() <= high
    assert (table["padj"] < 0.05).sum() <= 1


def test_eqtl_and_association_equal_r_lm_and_glm():
    data = pd.read_csv(R_REFERENCE / "data.tsv", sep="\t", index_col="sample_id")
    reference = pd.read_csv(R_REFERENCE / "reference.tsv", sep="\t", index_col="model")
    vst = ad.AnnData(data[["expression"]].to_numpy(), obs=data[["site", "sex", "age", "group"]])
    vst.var_names = ["ENSG01"]
    vst.var["gene_symbol"] = "HTR1A"
    dosages = data[["dosage", "risk"]]
    variants = pd.DataFrame(
        {
            "variant_id": ["dosage", "risk"],
            "gene": ["HTR1A", "HTR2B"],
            "ref": "C",
            "alt": "G",
            "source": "list",
        }
    )
    eqtl = eqtl_table(vst, dosages, variants, DESIGN).set_index("variant_id").loc["dosage"]
    assert [eqtl["beta"], eqtl["se"], eqtl["pvalue"]] == pytest.approx(
        reference.loc["eqtl", ["estimate", "se", "pvalue"]].tolist(), rel=1e-6
    )
    association = association_table(vst.obs, dosages, variants, [], DESIGN, CONTRAST, 5).set_index("feature")
    risk = association.loc["risk"]
    assert [risk["log_odds_ratio"], risk["se"], risk["pvalue"]] == pytest.approx(
        reference.loc["association", ["estimate", "se", "pvalue"]].tolist(), rel=1e-5
    )
    is_trd = data["group"] == "TRD"
    assert risk["alt_frequency_test"] == pytest.approx(data.loc[is_trd, "risk"].mean() / 2)
    assert risk["carriers_reference"] == int((data.loc[~is_trd, "risk"] >= 1).sum())


def test_rare_and_separating_variants_are_nan_with_a_reason_and_scores_per_sd():
    vst, dosages, variants = simulated_cohort(120, 2, 0.0, seed=3)
    obs = vst.obs.assign(prs=np.random.default_rng(1).normal(3, 2, 120))
    is_trd = (obs["group"] == "TRD").to_numpy()
    # a stop variant of two carriers (HTR2B Q20*), and one whose carriers are all TRD
    dosages["null0"] = 0.0
    dosages.iloc[:2, 1] = 1.0
    dosages["null1"] = np.where(is_trd & (np.arange(120) % 2 == 0), 1.0, 0.0)
    table = association_table(obs, dosages, variants, ["prs"], DESIGN, CONTRAST, 5).set_index("feature")
    assert table.loc["null0", "note"] == "minor allele count 2 < 5: too rare to fit"
    assert np.isnan(table.loc["null0", "pvalue"]) and np.isnan(table.loc["null0", "padj"])
    assert table.loc["null1", "note"] in {
        "perfect separation: the groups are split by it and the covariates",
        "the logistic fit did not converge (quasi-separation)",
    }
    assert np.isnan(table.loc["null1", "log_odds_ratio"])
    assert table.loc["null1", "carriers_reference"] == 0
    assert table.loc["prs", "note"] == "per SD of the score"
    assert np.isfinite(table.loc["prs", "pvalue"]) and np.isfinite(table.loc["planted", "pvalue"])


def test_expression_by_genotype_has_the_covariates_regressed_out():
    vst, dosages, _ = simulated_cohort(200, 1, 0.5, seed=8)
    values = adjusted_expression(vst, dosages, "ENSG01", "planted", DESIGN)
    assert sorted(values["genotype"].unique()) == [0, 1, 2]
    # the residuals carry no site effect, and the genotype's effect stays
    by_site = values["residual"].groupby(vst.obs.loc[values.index, "site"]).mean()
    assert by_site.abs().max() < 0.1
    by_genotype = values.groupby("genotype")["residual"].mean()
    assert by_genotype[2] - by_genotype[0] == pytest.approx(1.0, abs=0.25)


# --- the workflow -------------------------------------------------------------------------------


def test_the_genotype_rules_are_wired_and_a_bad_file_stops_them_with_its_message(workflow_copy):
    samples = pd.read_csv(workflow_copy / "config" / "samples.tsv", sep="\t")["sample_id"].tolist()
    calls = [(0, i % 2) for i in range(len(samples) + 1)]
    write_vcf(
        workflow_copy / "g.vcf.gz", samples + ["X99"], [("chr5", 63962738, "rs6295", ("C", "G"), calls)]
    )
    write_list(workflow_copy / "list.tsv")
    config = ("--config", "genotypes={file: g.vcf.gz, candidates: list.tsv}")
    dry = run_snakemake(workflow_copy, "--dry-run", *config)
    for job in ("genotypes", "genotype_eqtl", "genotype_association"):
        assert re.search(rf"^rule {job}:", dry.stdout, re.M), job
    assert "results/genotypes/association/TRD_vs_responder.tsv" in dry.stdout
    result = run_snakemake(workflow_copy, "results/genotypes/variants.tsv", *config, check=False)
    message = (
        "g.vcf.gz: 1 sample(s) of the genotype file are not in the sample sheet config/samples.tsv: X99; keep "
        "only the sheet's samples (`bcftools view -S samples.txt`) or correct their IDs."
    )
    assert result.returncode != 0
    assert message in (workflow_copy / "logs" / "genotypes" / "genotypes.log").read_text()
    assert not list((workflow_copy / "results").rglob("*.tsv*"))


# --- the report's sentences ---------------------------------------------------------------------


def test_the_report_says_which_eqtls_and_associations_are_called():
    eqtl = pd.DataFrame(
        {
            "gene": ["HTR2B", "SLC6A4", "HTR1A"],
            "variant_id": ["rs1", "rs2", "rs3"],
            "alt": ["T", "G", "G"],
            "beta": [0.42, 0.01, np.nan],
            "pvalue": [1e-8, 0.6, np.nan],
            "padj": [2e-8, 0.6, np.nan],
        }
    )
    assert eqtl_sentence(eqtl, 0.05) == (
        "Of 2 candidate gene x variant tests, 1 has an eQTL: HTR2B with rs1 (+0.42 per T allele) at BH-adjusted "
        "p < 0.05 (BH across the 2 tests of the table). Not tested, as the expression filter removed them: HTR1A."
    )
    assert eqtl_sentence(eqtl.iloc[2:], 0.05) == (
        "No candidate gene was tested. Not tested, as the expression filter removed them: HTR1A."
    )
    association = pd.DataFrame(
        {
            "feature": ["rs1", "rs2", "prs"],
            "odds_ratio": [np.nan, 1.1, 1.6],
            "pvalue": [np.nan, 0.5, 0.2],
            "padj": [np.nan, 0.5, 0.4],
        }
    )
    assert association_sentence(association, CONTRAST, 0.05) == (
        "Of 2 variants and scores tested, none is associated with TRD vs responder at BH-adjusted p < 0.05 "
        "(BH across the 2 tests of the table). 1 could not be fitted (too rare, or separating the groups: the "
        "table says which)."
    )
