"""What the MLP head sees: one ``Featurizer`` interface for the paper's pixels and for backbone
embeddings (``base``), their one cache (``cache``) and the registry of kinds (``registry``).

Importing the package loads the registry, which gives every featurizer class its kind's name."""

from trainer.features import registry as _registry  # noqa: F401
