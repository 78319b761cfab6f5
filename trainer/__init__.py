"""FaceComic's GUI-free core, with the command line on top (``trainer.cli``).

Subpackages by concern: ``common`` (settings, errors, events, cancel, outputs, safe text), ``data``
(folders, decoding, preprocessing, cache, splits), ``model`` (networks and model files),
``training`` (the paper's procedure and its results) and ``prediction``. Kept import-light on
purpose: submodules pull in torch only when they need it, so decode workers and ``--help`` start
fast. Nothing here imports Qt.
"""

import logging

__version__ = "0.1.0"

# A library's logger: records go wherever the application sends them (the app's --debug log), and
# never to stderr on their own; the CLI says what matters as events.
logging.getLogger(__name__).addHandler(logging.NullHandler())
