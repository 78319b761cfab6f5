"""FaceComic's GUI-free core: dataset scanning, preprocessing, training, model files and prediction.

Kept import-light on purpose: submodules pull in torch only when they need it, so decode workers
and ``--help`` start fast.
"""

__version__ = "0.1.0"
