"""Compare two RUNs CELL by CELL (ratios with intervals, verdicts); BUNDLEs; the comparison's pages."""
