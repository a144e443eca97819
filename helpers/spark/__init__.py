"""The Spark engine: the heavy stages of the pipeline on Apache Spark (DataFrame API and MLlib).

Entry points: :func:`helpers.spark.engine.run` (``python -m helpers.spark``) and
:func:`helpers.spark.bench.spark_bench_rung`. Every stage follows the conventions of the
local engine's module of the same stage; the modules say which results are bit-identical.
"""
