"""The Train tab: ``session`` (Qt-free state: dataset scan, settings form, run state machine, grid
results, holdout, outcome), ``form`` (settings text validated by the trainer's dataclasses),
``jobs`` (generator functions run by workers), and the Qt views ``tab``, ``widgets``, ``plots``."""
