"""Mining corpora at scale: a Parquet index of each model's structure, and mining on Dask.

`opseq.mining.index` keeps what mining found per model file, keyed by content hash, so a second
run over an unchanged corpus reads one file; `opseq.mining.dask_mining` mines the models that are
not in it, here or on a Dask cluster (`opseq.distributed.cluster.connect`).
"""
