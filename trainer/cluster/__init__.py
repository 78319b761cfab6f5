"""Prediction and feature extraction on a Dask cluster (the optional ``[cluster]`` extra).

Dask's scheduler does the scheduling, the retries of a task whose worker died and the transport;
this package only says what one task computes (``worker``), how results become files that
survive a killed job (``shards``), and what the driver does (``predict_job``, ``extract_job``,
``commands``). Nothing outside it imports Dask, and the app and the plain CLI never import it
(the ``cluster-optional`` contract, and a test that a plain run loads no Dask).
"""
