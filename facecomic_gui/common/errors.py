"""Errors as one sentence for the user; the traceback goes to the debug log, never the window."""

from __future__ import annotations

from trainer.common.errors import describe_error

__all__ = ["describe_error"]
