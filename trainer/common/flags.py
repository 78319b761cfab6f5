"""Command-line flags generated from the settings dataclasses, shared by ``facecomic-train`` and
the app's own command line, so every flag has one definition, one default and one set of limits."""

from __future__ import annotations

import argparse

from trainer.common.configs import cli_fields


def add_config_flags(
    parser: argparse.ArgumentParser, cls: type, *, only_if_given: bool = False, exclude: tuple[str, ...] = ()
) -> None:
    """One flag per CLI field of ``cls``; with ``only_if_given`` an absent flag leaves no
    attribute, so a caller can override just what the user typed."""
    for f in cli_fields(cls):
        if f.name in exclude:
            continue
        md = f.metadata
        kwargs = {k: md[k] for k in ("nargs", "type", "choices", "metavar", "action") if k in md}
        if "choices" not in md and "action" not in md:
            kwargs.setdefault("metavar", f.name.upper())
        default = f.default
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = md["help"] if "action" in md or default is None else f"{md['help']} (default: {shown})"
        parser.add_argument(
            md["flag"], dest=f"{cls.__name__}.{f.name}",
            default=argparse.SUPPRESS if only_if_given else default, help=help_text, **kwargs,
        )  # fmt: skip


def given_config_values(cls: type, args: argparse.Namespace) -> dict:
    """The fields of ``cls`` whose flags are in ``args``, by field name, lists made tuples."""
    values = {}
    for f in cli_fields(cls):
        key = f"{cls.__name__}.{f.name}"
        if hasattr(args, key):  # absent when excluded, or not given with only_if_given
            value = getattr(args, key)
            values[f.name] = tuple(value) if isinstance(value, list) else value
    return values


def config_from_args(cls: type, args: argparse.Namespace):
    return cls(**given_config_values(cls, args))
