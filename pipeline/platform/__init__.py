"""The ground floor every stage stands on: where files are (paths), the district's clock, atomic outputs, the
one-writer lock, the DuckDB store, fingerprints of what a stage last computed (stage_inputs, manifest), run
progress, fault points for the crash tests, failures in Chinese, and the Dagster resources."""
