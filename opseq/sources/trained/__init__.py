"""The ``trained`` source: small classifiers trained on scikit-learn's bundled datasets.

`opseq.sources.trained.datasets` loads and splits the data, `.architectures` defines the five
networks in torch and Keras, `.training` trains and caches them, `.source` makes them cases.
Importing this package imports no framework.
"""

from __future__ import annotations

from opseq.sources.trained.source import (
    KERAS_SOURCE,
    SOURCE,
    TrainedSource,
    parse_case_id,
)

__all__ = ["KERAS_SOURCE", "SOURCE", "TrainedSource", "parse_case_id"]
