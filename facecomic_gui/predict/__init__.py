"""The Predict tab: ``session`` (Qt-free state: rows and their predictions, the model in use,
queued inputs, filter and counts), ``jobs`` (the prediction generator), and the Qt views ``tab``
and ``table``."""
