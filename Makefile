# Two commands on a fresh machine:  `make run` (set up + run on the sample)  and  `make test`.
SHELL := /bin/bash
export DAGSTER_HOME := $(CURDIR)/dagster_home
export DAGSTER_DISABLE_TELEMETRY := 1
PY := .venv/bin/python

.PHONY: setup run run-spark test dev portal templates sample bench lint browser screenshots

.venv/.synced: pyproject.toml uv.lock
	command -v uv >/dev/null || python3 -m pip install -q uv
	uv sync --frozen --inexact --compile-bytecode
	@touch $@

# The Spark engine's extra (pyspark, sqlglot; ~490 MB): only the tests and `make run-spark` install it, so the
# default install stays light. Java 17 must be on the machine (it is on Debian 12 images with a JDK).
.venv/.synced-spark: .venv/.synced
	uv sync --frozen --inexact --extra spark --compile-bytecode
	@touch $@

# CJK font for the Chinese chart labels (Debian package; no runtime download).
/usr/share/fonts/truetype/wqy/wqy-microhei.ttc:
	@SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	( $$SUDO apt-get install -y -q fonts-wqy-microhei || ( $$SUDO apt-get update -q && $$SUDO apt-get install -y -q fonts-wqy-microhei ) ) >/dev/null 2>&1 \
	  && rm -rf ~/.cache/matplotlib \
	  || echo "warning: could not install fonts-wqy-microhei (Chinese chart labels need a CJK font)"

# Noto Sans CJK (Debian fonts-noto-cjk): the font the charts, maps and PDFs draw with. WenQuanYi maps Ⅹ (U+2169)
# to an empty glyph, so 「Ⅹ度」 lost its numeral; pipeline/publish/glyphs.py refuses to save a figure with an
# empty glyph, so a machine without Noto fails loudly on Ⅹ rather than drawing it blank.
/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc:
	@SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	( $$SUDO apt-get install -y -q fonts-noto-cjk || ( $$SUDO apt-get update -q && $$SUDO apt-get install -y -q fonts-noto-cjk ) ) >/dev/null 2>&1 \
	  && rm -rf ~/.cache/matplotlib \
	  || echo "warning: could not install fonts-noto-cjk (Ⅹ and other characters WenQuanYi draws empty will stop the PDFs)"

# Headless Chromium for the portal's browser tests (Debian packages; Playwright drives /usr/bin/chromium and
# never downloads a browser of its own). The tests need it: a failed install stops `make test` here.
/usr/bin/chromium:
	@SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	( $$SUDO apt-get install -y -q chromium chromium-driver || ( $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium chromium-driver ) ) >/dev/null 2>&1 \
	  || { echo "error: could not install Debian's chromium (the portal's browser tests need /usr/bin/chromium)"; exit 1; }

browser: /usr/bin/chromium

setup: .venv/.synced /usr/share/fonts/truetype/wqy/wqy-microhei.ttc /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
	@mkdir -p $(DAGSTER_HOME)
	@cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

run: setup
	$(PY) -m pipeline.cli run

run-spark: setup .venv/.synced-spark  # the same job on local Spark (LITONG_SPARK_MASTER, default local[*])
	LITONG_ENGINE=spark $(PY) -m pipeline.cli run

test: setup .venv/.synced-spark browser  # both cores: one test file per worker at a time (module fixtures stay shared)
	$(PY) -m pytest -n 2 --dist loadfile

dev: setup  # the Dagster UI (:3000, with the daemon) and the web portal (:8080) together; Ctrl-C stops both
	@trap 'kill 0' EXIT; $(PY) -m pipeline.portal serve & .venv/bin/dagster dev -m pipeline.wiring.definitions

portal: setup  # the web portal alone, http://127.0.0.1:8080 (LITONG_PORTAL_HOST / LITONG_PORTAL_PORT)
	$(PY) -m pipeline.portal serve

templates: setup
	$(PY) -m pipeline.intake.blank_templates --out output/templates

sample: setup  # the surveys from the seeded generator, then the feedback units would send on their hazards
	$(PY) -m sample.generate --out data_raw
	rm -rf data_raw/feedback data_raw/样例数据.yaml output/sample_build
	LITONG_OUTPUT=output/sample_build $(PY) -m pipeline.cli run >/dev/null
	$(PY) -m sample.feedback --db output/sample_build/litong.duckdb --out data_raw

screenshots: setup browser  # the portal's screenshots in docs/screenshots/ (the sample district, headless Chromium)
	$(PY) docs/portal_screenshots.py

bench: setup
	$(PY) benchmarks/bench_intake.py
	$(PY) -m benchmarks.bench_scoring
	$(PY) -m benchmarks.bench_ledger
	$(PY) -m benchmarks.bench_publish
	$(PY) -m benchmarks.bench_snapshot
	$(PY) -m benchmarks.bench_quake
	$(PY) -m benchmarks.bench_exports
	$(PY) -m benchmarks.bench_incremental
	$(PY) -m benchmarks.bench_portal
	$(PY) -m benchmarks.bench_run

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
