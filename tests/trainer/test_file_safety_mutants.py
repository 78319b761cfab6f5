"""Sharper tests of the file-safety core, written against the mutants that `make mutation` found
alive (docs/development.md, "Mutation testing"): each asserts what a user sees (a file kept, never
replaced; an error naming the file; a log and an undo that say what happened)."""

from __future__ import annotations
