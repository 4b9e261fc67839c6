"""The DE model: design and PyDESeq2 fits, filtering, VST, result tables, sensitivity models."""
