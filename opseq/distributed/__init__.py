"""Campaigns and corpus mining on Dask distributed (the ``dask`` extra).

`opseq.distributed.cluster` connects to a scheduler or starts a `LocalCluster`.
"""
