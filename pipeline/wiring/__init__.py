"""The Dagster wiring on top of the stages: every asset (assets), the jobs, the upload and earthquake sensors,
the daily schedule, the definitions Dagster loads, and the file given to spark-submit."""
