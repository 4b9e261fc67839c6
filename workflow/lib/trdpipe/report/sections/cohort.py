"""Cohort: samples per compared level and the covariate balance."""

import pandas as pd

from trdpipe.report.inputs import Run
from trdpipe.report.text import anchor_of, table_rows


def cohort_table(obs: pd.DataFrame, variable: str, categorical: list[str]) -> pd.DataFrame:
    """Samples per level of the contrast variable, split by every other categorical covariate."""
    table = obs.groupby(variable, observed=True).size().rename("n").to_frame()
    for other in categorical:
        if other != variable:
            counts = pd.crosstab(obs[variable], obs[other])
            counts.columns = [f"{other}: {level}" for level in counts.columns]
            table = table.join(counts)
    table.loc["total"] = table.sum()
    return table.reset_index()


def contrast_variables(contrasts: dict) -> list[str]:
    """The variables the contrasts compare, each once, in config order."""
    return list(dict.fromkeys(c["variable"] for c in contrasts.values()))


def cohort_tables(obs: pd.DataFrame, contrasts: dict, models: dict[str, pd.DataFrame]) -> list[dict]:
    """One cohort table per compared variable, split by the categorical covariates of the first
    contrast's model that compares it."""
    tables = []
    for variable in contrast_variables(contrasts):
        first = next(name for name, c in contrasts.items() if c["variable"] == variable)
        table = cohort_table(obs, variable, categorical_covariates(models[first]))
        tables.append({"variable": variable, "id": anchor_of("cohort", variable), "table": table_rows(table)})
    return tables


def balance_by_variable(balance: pd.DataFrame, contrasts: dict) -> list[dict]:
    """qc's covariate_balance.tsv split into one table per compared variable, with the contrasts
    that compare it, and only its own level columns (the file pads the other variables' levels)."""
    tables = []
    for variable in contrast_variables(contrasts):
        rows = balance[balance["grouping"] == variable].drop(columns="grouping")
        if rows.empty:  # a qc table written before this contrast was added
            continue
        names = [name for name, c in contrasts.items() if c["variable"] == variable]
        rows = rows.dropna(axis=1, how="all")
        # blank, not NA, where a row has nothing to say (the level of a continuous covariate)
        tables.append(
            {
                "variable": variable,
                "contrasts": ", ".join(names),
                "id": anchor_of("covariate-balance", variable),
                "table": table_rows(rows.astype(object).where(rows.notna(), "")),
            }
        )
    return tables


def categorical_covariates(model: pd.DataFrame) -> list[str]:
    return model.loc[model["type"] == "categorical", "variable"].tolist()


def build(run: Run) -> dict:
    return {
        "toc": [{"anchor": "cohort", "label": "Cohort"}],
        "cohort": cohort_tables(run.cohort.obs, run.contrasts, run.models),
        "balance": balance_by_variable(pd.read_csv(run.inputs.balance, sep="\t"), run.contrasts),
    }
