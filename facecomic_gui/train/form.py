"""The Train tab's settings form as text, validated by building the trainer's own dataclasses:
the limits and their reasons live in ``trainer.common.configs`` and nowhere else. Qt-free."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from trainer.common.configs import RECIPES, GridSpec, TrainConfig, field_limits
from trainer.common.text import split_numbers
from trainer.features.registry import featurizer_class

CHOICE_FIELDS = ("features", "split", "head")
TEXT_FIELDS = ("l2", "learning_rates", "epochs", "batch_size", "seed", "heads")
FIELDS = CHOICE_FIELDS + TEXT_FIELDS
# The fields only one head uses: the other head's are shown muted while it is chosen.
HEAD_FIELDS = {"linear": ("l2",), "mlp": ("learning_rates", "epochs", "batch_size", "heads")}
_OWNER = {"features": TrainConfig, "split": TrainConfig, "head": TrainConfig, "batch_size": TrainConfig,
          "seed": TrainConfig, "heads": TrainConfig, "learning_rates": GridSpec, "epochs": GridSpec,
          "l2": GridSpec}  # fmt: skip
AUTO = "auto"  # the heads field's text for 0, what the features call for


@dataclass(frozen=True, slots=True)
class TrainForm:
    """The Train tab's settings: the trainer's own settings dataclasses, nothing re-declared."""

    config: TrainConfig = TrainConfig()
    grid: GridSpec = GridSpec()


@dataclass(frozen=True, slots=True)
class FormText:
    """What the fields hold, exactly as typed."""

    features: str = TrainConfig().features
    split: str = "random"
    head: str = AUTO
    l2: str = ""
    learning_rates: str = ""
    epochs: str = ""
    batch_size: str = ""
    seed: str = ""
    heads: str = AUTO

    @classmethod
    def from_form(cls, form: TrainForm) -> FormText:
        return cls(
            features=form.config.features,
            split=form.config.split,
            head=form.config.head,
            l2=", ".join(str(v) for v in form.grid.l2),
            learning_rates=", ".join(str(v) for v in form.grid.learning_rates),
            epochs=", ".join(str(v) for v in form.grid.epochs),
            batch_size=str(form.config.batch_size),
            seed=str(form.config.seed),
            heads=str(form.config.heads) if form.config.heads else AUTO,
        )


@dataclass(frozen=True, slots=True)
class Validation:
    """``form`` when every field is valid; else None and a reason per invalid field."""

    form: TrainForm | None
    errors: dict[str, str] = field(default_factory=dict)
    head: str = "mlp"  # the head the settings ask for, "auto" resolved for the chosen features

    def unused(self, name: str) -> bool:
        """Whether ``name`` belongs to the other head (shown muted; still checked)."""
        return any(name in names for head, names in HEAD_FIELDS.items() if head != self.head)


def _parse(kind: Callable[[str], object], text: str) -> object:
    try:
        return kind(text.strip())
    except ValueError:
        return None


def validate(text: FormText) -> Validation:
    """Parse each field, then let its dataclass judge it alone (the other fields at their
    defaults), so each reason lands on its own field; finally build the whole form."""
    values: dict[str, object] = {name: getattr(text, name) for name in CHOICE_FIELDS}
    errors: dict[str, str] = {}
    head = resolved_head(text.features, text.head)
    for name, kind, what in (
        ("l2", float, "numbers"),
        ("learning_rates", float, "numbers"),
        ("epochs", int, "whole numbers"),
    ):
        parsed = [_parse(kind, t) for t in split_numbers(getattr(text, name))]
        if any(v is None for v in parsed):
            errors[name] = f"{label(name)} must be {what} separated by commas or spaces."
        else:
            values[name] = tuple(parsed)
    heads = text.heads.strip().lower()
    parsed_heads = 0 if heads in ("", AUTO) else _parse(int, heads)
    if parsed_heads is None:
        errors["heads"] = f"Heads must be a whole number or {AUTO} ({hint('heads')})."
    else:
        values["heads"] = parsed_heads
    for name in ("batch_size", "seed"):
        parsed = _parse(int, getattr(text, name))
        if parsed is None:
            errors[name] = f"The {label(name).lower()} must be a whole number ({hint(name)})."
        else:
            values[name] = parsed
    for name, value in values.items():
        try:
            _OWNER[name](**{name: value})
        except ValueError as err:
            errors[name] = str(err)
    # Every field is judged, the other head's too, exactly as facecomic-train judges its flags.
    if (
        head == "linear"
        and "heads" not in errors
        and isinstance(values.get("heads"), int)
        and values["heads"] > 1
    ):
        errors["heads"] = (
            f"The linear head is one model; {values['heads']} heads apply to the MLP head only "
            f"(set Heads to {AUTO} or 1, or choose the MLP head)."
        )
    if errors:
        return Validation(None, errors, head)
    try:
        config = TrainConfig(
            **{k: values[k] for k in ("features", "split", "head", "batch_size", "seed", "heads")}
        )
        grid = GridSpec(values["learning_rates"], values["epochs"], values["l2"])  # type: ignore[arg-type]
    except ValueError as err:  # pragma: no cover - every rule above is per field
        return Validation(None, {"split": str(err)}, head)
    return Validation(TrainForm(config, grid), head=head)


def resolved_head(features: str, head: str) -> str:
    """The head a run with these settings trains: "auto" is the features' own."""
    if head != AUTO:
        return head
    try:
        return featurizer_class(features).auto_recipe.head
    except ValueError:
        return "mlp"


def label(name: str) -> str:
    return {"features": "Features", "split": "Split", "head": "Head", "l2": "L2 weights",
            "learning_rates": "Learning rates", "epochs": "Epochs", "batch_size": "Batch size", "seed": "Seed",
            "heads": "Heads"}[name]  # fmt: skip


def hint(name: str) -> str:
    """The allowed range, read from the dataclass field, for tooltips and messages."""
    low, high = field_limits(_OWNER[name], name)
    if name == "learning_rates":
        return "each above 0"
    if name == "l2":
        return f"each above 0, at most {high:g}"
    if low is not None and high is not None:
        return f"{low:,} to {high:,}"
    return ""


def replace_text(text: FormText, **changes: str) -> FormText:
    return dataclasses.replace(text, **changes)


def paper_recipe(text: FormText) -> FormText:
    """The paper's recipe (``RECIPES["paper"]``, as ``--recipe paper``): its 24x24 pixels, its split,
    its grid and one MLP; batch size and seed stay."""
    config, grid = RECIPES["paper"]
    paper = FormText.from_form(TrainForm(config, grid))
    return replace_text(
        text, features=paper.features, split=paper.split, head=paper.head,
        learning_rates=paper.learning_rates, epochs=paper.epochs, heads=paper.heads,
    )  # fmt: skip
