"""Serving: the recommendation API over an export folder.

``api`` (the FastAPI app and its routes), ``settings`` (environment), ``reload`` (the export served
and its reload), ``store`` (an export in memory), ``lists`` (ranked lists and their JSON pieces),
``basket`` (real-time basket scores), ``ids`` (ids of any type matched by value), ``guards`` (rate
limit, API key, body cap) and ``cache`` (whole GET answers).
"""
