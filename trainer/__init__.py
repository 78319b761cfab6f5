"""FaceComic's GUI-free core, with the command line on top (``trainer.cli``).

Subpackages by concern: ``common`` (settings, errors, events, cancel, atomic writes), ``data``
(folders, decoding, preprocessing, cache, splits), ``model`` (networks and model files),
``training`` (the paper's procedure and its results) and ``prediction``. Kept import-light on
purpose: submodules pull in torch only when they need it, so decode workers and ``--help`` start
fast. Nothing here imports Qt.
"""

__version__ = "0.1.0"
