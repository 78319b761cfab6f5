"""Prediction on files and in-memory images, batch by batch, with a result or an error per item,
and the CSV that both the CLI and the app write."""
