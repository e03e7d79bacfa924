"""Where the stages' work runs (issue 31): the seam (seam.py chooses, base.py says what a stage may ask), the
DuckDB engine (duckdb.py, the default) and the Spark engine (spark/). The engines know no stage."""
