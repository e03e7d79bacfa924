"""Apache Spark as the second engine of the same rule set (issue 16).

`transpile` turns the DuckDB SQL of the rules into Spark SQL (sqlglot; no pyspark needed), `session` starts
the one Spark session of a process, `frames` moves tables between DuckDB (Arrow) and Spark. Only the Spark
engine imports `session` and `frames`; nothing in the default DuckDB run imports pyspark.
"""
