from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from trainer.data.synthetic import make_dataset

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SAMPLE = SHARED / "data" / "face2comics-sample"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own decode cache, never the user's."""
    monkeypatch.setenv("FACECOMIC_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data", 20)


@pytest.fixture(scope="session")
def shared_sample() -> Path:
    """The real face2comics sample in ../shared; skipped when absent, except in CI."""
    if not SAMPLE.is_dir():
        message = f"the real sample {SAMPLE} is not here (../shared must sit beside the checkout)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {message}")
        pytest.skip(message)
    return SAMPLE


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A small model trained once per session on synthetic data, and its saved file."""
    from trainer.common.configs import DecodeOptions, GridSpec, TrainConfig
    from trainer.common.events import drain
    from trainer.model.model_file import save_model
    from trainer.training.experiment import run_experiment

    root = make_dataset(tmp_path_factory.mktemp("trained") / "data", 24, seed=1)
    result = drain(
        run_experiment(
            root,
            config=TrainConfig(features="pixels"),
            grid=GridSpec((0.05,), (3,)),
            decode=DecodeOptions(use_cache=False),
        )
    )
    path = save_model(root.parent / "model.safetensors", result)
    return result, path, root


def pytest_terminal_summary(terminalreporter, config) -> None:
    """The order's seed last, where a failure is read (the header that says it is hidden by -q)."""
    seed = getattr(config.option, "randomly_seed", None)
    if config.pluginmanager.hasplugin("randomly") and isinstance(seed, int):
        args = [a for a in config.invocation_params.args if not str(a).startswith("--randomly-seed")]
        replay = "python -m " + shlex.join(["pytest", *map(str, args), f"--randomly-seed={seed}"])
        terminalreporter.write_line(f"Tests ran in random order, seed {seed}: replay with {replay}")
