"""Reviewing predictions, in plain Python (no Qt): *Show: Most uncertain first* lists every
answer with the ones the model is least sure of at the top, so a review starts where mistakes are
likeliest."""

from __future__ import annotations

# The Show choices besides the classes: keys of the session's label filter
ERROR_KEY = "__error__"  # the rows without an answer (unreadable images)
UNSURE_KEY = "__unsure__"  # a filter across classes: the rows the predictor flagged
NOT_A_FACE_KEY = "__not_a_face__"  # the flagged rows whose flag is "not a face"
UNCERTAIN_FIRST_KEY = "__uncertain_first__"  # every answer, least sure first
# ``facecomic --show NAME``
SHOW_CHOICES = {
    "all": None,
    "unsure": UNSURE_KEY,
    "not-a-face": NOT_A_FACE_KEY,
    "unreadable": ERROR_KEY,
    "uncertain-first": UNCERTAIN_FIRST_KEY,
}


def uncertainty_key(row) -> tuple:
    """A ``PredictionRow``'s place: flagged answers first (not a face, unlike the training images, low confidence), then by
    how close the calibrated probability of the answer is to 0.5; rows without an answer last."""
    p = row.prediction
    if p is None or not p.ok or p.confidence is None:
        return (2, 0.0, row.name.lower())
    return (0 if p.unsure else 1, abs(p.confidence - 0.5), row.name.lower())
