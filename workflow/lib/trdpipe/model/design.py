"""The design as every engine fits it: the metadata's coding and the contrast's column."""

import numpy as np
import pandas as pd
from formulaic import model_matrix

from trdpipe.checks.inputs import design_variables


def shrink_coefficient(contrast: dict) -> str:
    """Name of the design-matrix column of the contrast (formulaic treatment coding)."""
    return f"{contrast['variable']}[T.{contrast['test']}]"


def contrast_model_matrix(obs: pd.DataFrame, design: str, contrast: dict) -> tuple[pd.DataFrame, str]:
    """The design matrix the engines fit on these samples (prepare_metadata's coding, formulaic's
    treatment contrasts) and the name of the contrast's column in it."""
    metadata, _ = prepare_metadata(obs, design, contrast)
    return model_matrix(design, metadata), shrink_coefficient(contrast)


def prepare_metadata(
    obs: pd.DataFrame, design: str, contrast: dict | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Design columns ready to fit, and a table saying how each was coded.

    Continuous covariates are centred and scaled (so the optimiser sees
    comparable columns); categorical ones become categories with the contrast's
    reference level first, so model coefficients read 'test vs reference'.
    """
    metadata = pd.DataFrame(index=obs.index)
    rows = []
    for variable in design_variables(design):
        column = obs[variable]
        if pd.api.types.is_numeric_dtype(column):
            centre, scale = float(column.mean()), float(column.std(ddof=1))
            scale = scale if scale > 0 else 1.0
            metadata[variable] = (column - centre) / scale
            rows.append((variable, "continuous", "", "", centre, scale))
        else:
            levels = sorted(column.astype(str).unique())
            if contrast and variable == contrast["variable"]:
                levels.remove(contrast["reference"])
                levels.insert(0, contrast["reference"])
            metadata[variable] = pd.Categorical(column.astype(str), categories=levels)
            rows.append((variable, "categorical", ",".join(levels), levels[0], np.nan, np.nan))
    coding = pd.DataFrame(rows, columns=["variable", "type", "levels", "reference", "centre", "scale"])
    return metadata, coding
