"""The file to give spark-submit: the command line with the Spark engine (README, "Past one machine").

    PYSPARK_PYTHON=.venv/bin/python .venv/bin/spark-submit --master yarn pipeline/wiring/spark_submit.py run

The session spark-submit prepared is the one the engine uses (pipeline/engines/spark/session.py keeps its master).
"""

import os
import sys

os.environ.setdefault("LITONG_ENGINE", "spark")

from pipeline.cli import main  # noqa: E402 - the engine is set before the pipeline is imported

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["run"]))
