"""ALS on MLlib (``pyspark.ml.recommendation.ALS(implicitPrefs=True)``) with the local cold start.

* **Input**: the fit window's distinct-basket counts (``FitWindow.user_items``), the
  local ALS input. MLlib's implicit model differs from ``implicit``'s (Hu, Koren &
  Volinsky): confidence ``1 + alpha * count`` (``implicit`` with ``weighting="none"``:
  ``alpha * count``) and a regularization scaled by each user's / item's number of
  ratings (``implicit``: not scaled). :func:`spark_reg_param` maps the local
  ``regularization`` to MLlib's ``regParam`` by dividing it by the mean number of
  distinct products per customer with history (the same average penalty per customer).
* **Cold start**: customers without a fit-window purchase (no factors) get the local
  ALS fallback, :func:`helpers.spark.models.popularity_rank_scores`.
* **Top-N with exclusion**: MLlib's ``recommendForUserSubset`` cannot exclude items, so a
  customer with ``n`` excluded products asks for ``k + 2**ceil(log2(n))`` (customers
  bucketed by that depth, one call per bucket: about log2(max n) calls, ``U * k + 2 *
  nnz`` rows), then the excluded pairs are removed and the first ``k`` kept: exact.
* **Identifiers**: MLlib needs 32-bit ids; ids outside that range are mapped to their
  row number in id order.
"""

from __future__ import annotations

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from helpers.spark.models import popularity_rank_scores
from helpers.spark.split import FitWindow
from helpers.spark.topn import rank_within, recommend

INT32_MAX = 2 ** 31 - 1


def spark_reg_param(fw: FitWindow, regularization: float) -> float:
    """The local ``regularization`` over the mean distinct products per active customer."""
    row = fw.user_items.agg(F.count(F.lit(1)).alias("nnz"), F.count_distinct("customer_id").alias("u")).first()
    mean = row["nnz"] / max(row["u"], 1)
    return float(regularization) / max(mean, 1.0)


def id_index(df: DataFrame, col: str) -> DataFrame | None:
    """``col, <col>_idx`` mapping when the ids are text or do not fit in 32 bits (None: use them as is)."""
    if isinstance(df.schema[col].dataType, T.IntegralType):
        row = df.agg(F.min(col).alias("lo"), F.max(col).alias("hi")).first()
        if row["lo"] is None or (row["lo"] >= 0 and row["hi"] <= INT32_MAX):
            return None
    ids = df.select(col).distinct()
    return ids.withColumn(f"{col}_idx", (F.row_number().over(Window.orderBy(col))
                                         - 1).cast("int"))


class SparkALS:
    """Fit MLlib ALS on a fit window and recommend for any customers (cold ones included)."""

    def __init__(self, factors: int = 64, regularization: float = 10.0, alpha: float = 1.0, iterations: int = 15,
                 random_state: int = 0, reg_param: float | None = None, num_blocks: int | None = None):
        self.factors, self.regularization, self.alpha = factors, regularization, alpha
        self.iterations, self.random_state, self.reg_param, self.num_blocks = iterations, random_state, reg_param, num_blocks

    def fit(self, fw: FitWindow) -> SparkALS:
        self.fw = fw
        self.reg_param_ = self.reg_param if self.reg_param is not None else spark_reg_param(fw, self.regularization)
        ui = fw.user_items
        self.users_ = id_index(fw.customers, "customer_id")
        self.items_ = id_index(fw.catalog, "product_id")
        ratings = self._to_index(ui)
        blocks = self.num_blocks or max(1, int(ratings.sparkSession.conf.get("spark.sql.shuffle.partitions")))
        als = ALS(rank=int(self.factors), maxIter=int(self.iterations), regParam=float(self.reg_param_),
                  alpha=float(self.alpha), implicitPrefs=True, userCol="user", itemCol="item", ratingCol="rating",
                  seed=int(self.random_state), numUserBlocks=blocks, numItemBlocks=blocks, nonnegative=False)
        self.model_: ALSModel = als.fit(ratings)
        self.warm_ = ui.select("customer_id").distinct()
        self.fallback_ = popularity_rank_scores(fw)
        return self

    def _to_index(self, ui: DataFrame) -> DataFrame:
        df = ui
        if self.users_ is not None:
            df = df.join(self.users_, "customer_id")
        else:
            df = df.withColumn("customer_id_idx", F.col("customer_id"))
        if self.items_ is not None:
            df = df.join(self.items_, "product_id")
        else:
            df = df.withColumn("product_id_idx", F.col("product_id"))
        return df.select(F.col("customer_id_idx").cast("int").alias("user"),
                         F.col("product_id_idx").cast("int").alias("item"),
                         F.col("baskets").cast("float").alias("rating"))

    def _user_frame(self, customers: DataFrame) -> DataFrame:
        if self.users_ is None:
            return customers.select("customer_id", F.col("customer_id").cast("int").alias("user"))
        return customers.join(self.users_, "customer_id").select("customer_id",
                                                                 F.col("customer_id_idx").alias("user"))

    def _exploded(self, users: DataFrame, depth: int) -> DataFrame:
        recs = self.model_.recommendForUserSubset(users.select("user"), int(depth))
        out = (recs.join(users, "user").select("customer_id", F.explode("recommendations").alias("r"))
               .select("customer_id", F.col("r.item").alias("item"), F.col("r.rating").cast("float").alias("score")))
        if self.items_ is None:
            return out.withColumnRenamed("item", "product_id")
        return (out.join(self.items_.withColumnRenamed("product_id_idx", "item"), "item")
                .select("customer_id", "product_id", "score"))

    def recommend(self, customers: DataFrame, k: int, excluded: DataFrame | None = None) -> DataFrame:
        """``customer_id, rank, product_id, score`` for every customer (cold: the fallback)."""
        who = customers.select("customer_id").distinct()
        warm = who.join(self.warm_, "customer_id", "left_semi")
        cold = who.join(self.warm_, "customer_id", "left_anti")
        users = self._user_frame(warm)
        if excluded is None:
            cand = self._exploded(users, k)
        else:
            n_ex = excluded.join(warm, "customer_id", "left_semi").groupBy("customer_id").agg(
                F.count(F.lit(1)).alias("n"))
            depth = F.lit(int(k)) + F.when(F.col("n") > 0, F.pow(F.lit(2.0), F.ceil(F.log2("n")))).otherwise(0)
            users = users.join(n_ex, "customer_id", "left").fillna(0, subset=["n"]).withColumn(
                "depth", depth.cast("int")).cache()
            depths = sorted(r["depth"] for r in users.select("depth").distinct().collect())
            parts = [self._exploded(users.filter(F.col("depth") == d).select("customer_id", "user"), d)
                     for d in depths]
            cand = parts[0]
            for p in parts[1:]:
                cand = cand.unionByName(p)
            cand = cand.join(excluded, ["customer_id", "product_id"], "left_anti")
        warm_recs = rank_within(cand, "customer_id", k).select("customer_id", "rank", "product_id", "score")
        cold_recs = recommend(self.fallback_, cold, k, excluded)
        return warm_recs.unionByName(cold_recs)



def item_factors(model: SparkALS) -> DataFrame:
    """``product_id, features`` of a fitted :class:`SparkALS`."""
    f = model.model_.itemFactors
    if model.items_ is None:
        return f.select(F.col("id").cast("long").alias("product_id"), "features")
    return f.join(model.items_, f["id"] == model.items_["product_id_idx"]).select("product_id", "features")
