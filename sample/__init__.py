"""The bundled sample survey of 利通区: a seeded generator (`generate`) and its tables (`tables/`).

Not part of the pipeline: it writes the files departments would upload, for demos, tests and
benchmarks. `python -m sample.generate --out data_raw` regenerates the bundled `data_raw/`.
"""
