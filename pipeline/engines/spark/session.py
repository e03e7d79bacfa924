"""The one Spark session of a process, set up the way the rule set needs it.

* `spark.sql.jsonGenerator.ignoreNullFields=false`: to_json keeps a NULL field, as DuckDB's does (the
  evidence of a finding names every column it shows, empty or not).
* Arrow for pandas and Arrow tables in and out (pandas 3's nullable booleans and Int64 survive only through it).
* Partition values stay strings: a town code such as 640302100 is a code, not a number.
* The session time zone is UTC, so a DATE or TIMESTAMP reads back as written.
* `spark.sql.ansi.enabled=false`: DuckDB's TRY_CAST and integer division semantics are what the rules assume
  (a bad cast is NULL, not an error).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.engines.settings import spark_master

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SESSION_CONF = {
    "spark.sql.jsonGenerator.ignoreNullFields": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "false",
    "spark.sql.adaptive.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}
LOG4J2 = Path(__file__).with_name("log4j2.properties")


def local_conf() -> dict[str, str]:
    """Local runs only (a cluster's own settings stand): the JVM's quiet log, few shuffle partitions for a
    machine's cores, and driver memory, which must be set before the JVM starts. Read when a session starts."""
    return {
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={LOG4J2.as_uri()}",
        "spark.sql.shuffle.partitions": os.environ.get("LITONG_SPARK_SHUFFLE_PARTITIONS", "8"),
        "spark.driver.memory": os.environ.get("LITONG_SPARK_DRIVER_MEMORY", "4g"),
    }


_lock = threading.Lock()
_session: SparkSession | None = None


def get_spark(master: str | None = None) -> SparkSession:
    """The process's Spark session, started on first use (a few seconds: a JVM)."""
    global _session
    with _lock:
        if _session is not None and _session_alive(_session):
            return _session
        from pyspark.sql import SparkSession

        builder = SparkSession.builder.appName("litong-seismic")
        under_submit = bool(os.environ.get("SPARK_ENV_LOADED")) or "PYSPARK_GATEWAY_PORT" in os.environ
        master = master or spark_master() or (None if under_submit else "local[*]")  # else: this machine's cores
        if master:
            builder = builder.master(master)
        local = (master or "").startswith("local")
        if local:  # a local run binds to loopback (not the host name's address, which may not route)
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        for key, value in {**SESSION_CONF, **(local_conf() if local else {})}.items():
            builder = builder.config(key, value)
        _session = builder.getOrCreate()
        _session.sparkContext.setLogLevel("FATAL")  # errors reach the caller as exceptions, not as log pages
        logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)  # pyspark's own page per error
        return configure(_session)  # a session that already existed (spark-submit) gets them too


def configure(session: SparkSession) -> SparkSession:
    """The session settings the rule set needs, on `session` (a new session of a context starts without them)."""
    for key, value in SESSION_CONF.items():
        if not key.startswith("spark.ui."):
            session.conf.set(key, value)
    return session


def _session_alive(session: SparkSession) -> bool:
    try:
        return not session.sparkContext._jsc.sc().isStopped()
    except Exception:
        return False


def stop_spark() -> None:
    global _session
    with _lock:
        if _session is not None:
            _session.stop()
            _session = None
