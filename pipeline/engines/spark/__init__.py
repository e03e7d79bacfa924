"""Apache Spark as the second engine of the same rule set (issue 16), behind the seam (issue 31).

`engine` is what the seam hands the stages (SparkEngine); `transpile` turns the DuckDB SQL of the rules into
Spark SQL (sqlglot; no pyspark needed), `session` starts the one Spark session of a process, `frames` moves
tables between DuckDB (Arrow) and Spark, `validate` runs the expectations on a Spark DataFrame, `rules` puts the
rule set on Spark and checks it there, `staging` publishes the staging tables as Parquet by town, `scoring`
scores a kind there. Nothing in the default DuckDB run imports pyspark.
"""
