"""The paper's procedure as an event generator (grid search, final training, one holdout score),
what a run produces, and its plain-text report."""
