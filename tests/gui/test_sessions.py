"""The Qt-free sessions, driven directly: no window, no worker thread."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from facecomic_gui.predict.session import ERROR_KEY, PENDING_KEY, UNSURE_KEY, PredictionSession
from facecomic_gui.train.form import FormText, TrainForm, validate
from facecomic_gui.train.session import TrainingSession
from tests.gui.fake_jobs import ManualJobs
from trainer.common.configs import MAX_BATCH_SIZE, MAX_SEED, PAPER_GRID, GridSpec, TrainConfig
from trainer.common.flags import config_from_args
from trainer.data.synthetic import make_dataset
from trainer.model.results import GridResult, pick_best
from trainer.training import events as ev

REPO = Path(__file__).resolve().parents[2]


def test_sessions_import_without_qt():
    code = (
        "import sys; import facecomic_gui.train.session, facecomic_gui.predict.session, "
        "facecomic_gui.train.form, facecomic_gui.train.gallery_session, facecomic_gui.runs.session; "
        "qt = sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken6', 'pyqtgraph'))); "
        "print(qt); sys.exit(1 if qt else 0)"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize(
    ("field", "text", "valid"),
    [
        ("seed", str(MAX_SEED), True),
        ("seed", str(MAX_SEED + 1), False),
        ("seed", "-1", False),
        ("batch_size", "100000", True),
        ("batch_size", str(MAX_BATCH_SIZE), True),
        ("batch_size", str(MAX_BATCH_SIZE + 1), False),
        ("batch_size", "0", False),
        ("learning_rates", "0.01 inf", False),
        ("learning_rates", "nan", False),
        ("learning_rates", "0", False),
        ("epochs", "1000001", False),
        ("epochs", "2.5", False),
    ],
)
def test_form_and_cli_share_the_limits(field: str, text: str, valid: bool):
    """The window's form and facecomic-train accept and refuse exactly the same values."""
    from trainer.cli import build_train_parser

    form = validate(_text_with(field, text))
    flag = {"seed": "--seed", "batch_size": "--batch-size", "learning_rates": "--lr", "epochs": "--epochs"}[
        field
    ]
    cli_ok = True
    try:
        args = build_train_parser().parse_args(["data", flag, *text.split()])
        config_from_args(TrainConfig, args)
        config_from_args(GridSpec, args)
    except (ValueError, SystemExit):
        cli_ok = False
    assert (form.form is not None) == valid == cli_ok
    if not valid:
        assert form.errors[field]  # a reason on that field, from the dataclass
        assert set(form.errors) == {field}


def _text_with(field: str, text: str):
    import dataclasses

    return dataclasses.replace(FormText.from_form(TrainForm()), **{field: text})


def test_training_session_scans_validates_and_runs(tmp_path: Path):
    jobs = ManualJobs()
    session = TrainingSession(jobs, tmp_path / "runs")
    states = []
    session.state_changed.connect(states.append)
    assert not session.can_start  # no dataset yet
    data = make_dataset(tmp_path / "d", 3)
    session.set_dataset(str(data))
    assert session.state == "scanning" and not session.can_start
    jobs.run("scan")
    assert session.state == "idle" and session.scan.counts == (3, 3)
    assert session.can_start

    session.set_form_text(seed=str(MAX_SEED + 1))
    assert not session.can_start and "seed" in session.validation.errors
    session.set_form_text(seed=str(MAX_SEED), learning_rates="0.1, 0.01", epochs="2 1")
    assert session.can_start and session.form.config.seed == MAX_SEED
    assert session.grid.epochs == (1, 2)  # the table previews the normalised grid

    results = [GridResult(0.1, 1, 0.5, 0.7), GridResult(0.1, 2, 0.75, 0.6), GridResult(0.01, 1, 0.75, 0.5)]

    def scripted(*_args, cancel):
        yield ev.BatchFinished("grid", 0.1, 1, 1, 1, 0.7, step=1, total_steps=3)
        for r in results:
            yield ev.ConfigFinished(r.lr, r.epochs, r.val_accuracy, r.val_loss, index=1, total=3)
        return outcome

    outcome = SimpleNamespace(model="the run's model")  # stands for a TrainingOutcome
    finished = []
    session.run_finished.connect(lambda done: finished.append((session.state, done)))
    assert session.start()
    assert session.state == "running" and not session.can_start
    session.set_dataset(str(data))  # ignored during a run
    assert jobs.is_running("train") and not jobs.is_running("scan")
    jobs.run("train", scripted)
    assert finished == [("idle", outcome)]  # announced once idle
    assert session.model == "the run's model"  # what Save, Use and the gallery work on
    assert session.batches_seen == 1
    assert session.grid_results == results
    assert session.best == pick_best(results) == results[2]  # tie on accuracy: lower loss
    assert states == ["scanning", "idle", "running", "idle"]


def test_training_session_cancel_and_failure(tmp_path: Path):
    jobs = ManualJobs()
    session = TrainingSession(jobs, tmp_path / "runs")
    session.set_dataset(str(make_dataset(tmp_path / "d", 2)))
    jobs.run("scan")
    ended = []
    session.run_cancelled.connect(lambda: ended.append("cancelled"))
    session.run_failed.connect(ended.append)
    session.start()
    session.cancel()
    assert session.state == "cancelling" and not session.can_cancel

    def forever(*_args, cancel):
        while True:
            yield None

    jobs.run("train", forever)
    assert ended == ["cancelled"] and session.state == "idle" and session.outcome is None

    def broken(*_args, cancel):
        raise OSError(28, "No space left on device")
        yield

    session.start()
    jobs.run("train", broken)
    assert ended[-1] == "No space left on device." and session.run_error == ended[-1]


def test_training_session_scan_failure_disarms_train_after_scan(tmp_path: Path):
    jobs = ManualJobs()
    session = TrainingSession(jobs, tmp_path / "runs")
    failed = []
    session.scan_failed.connect(failed.append)
    session.train_after_next_scan()
    session.set_dataset(str(tmp_path / "missing"))
    jobs.run("scan")
    assert failed and "does not exist" in failed[0] and session.scan_error == failed[0]
    session.set_dataset(str(make_dataset(tmp_path / "d", 2)))
    jobs.run("scan")
    assert session.state == "idle" and not jobs.is_running("train")


class _Model:
    def __init__(self, name: str) -> None:
        self.name = name
        self.class_names = ("comics", "faces")


def _prediction(label: str | None, flag: str = ""):
    from trainer.prediction.predictor import Prediction

    if label is None:
        return Prediction("x.png", error="not a readable image")
    return Prediction("x.png", label, label.title(), 0.6, {label: 0.6}, flag=flag)


def test_prediction_session_rows_counts_filter_and_model_switch(tmp_path: Path):
    from facecomic_gui.predict import jobs as predict_jobs

    jobs = ManualJobs()
    session = PredictionSession(jobs)
    asked = []
    session.needs_model.connect(lambda: asked.append(True))
    session.add_inputs([tmp_path / "a.png"])
    assert asked == [True] and not session.rows

    session.set_model_loading()
    session.add_inputs([tmp_path / "a.png", tmp_path / "b.png"])  # kept until the model is in
    assert not jobs.is_running("predict")
    first = _Model("first")
    session.set_model(first)
    assert jobs.args("predict") == (first, [tmp_path / "a.png", tmp_path / "b.png"])

    def predict(model, inputs, *, cancel):
        yield predict_jobs.ImagesFound(tuple(inputs))
        yield predict_jobs.BatchPredicted(0, (_prediction("faces"), _prediction(None)))

    done = []
    session.predictions_finished.connect(lambda: done.append(True))
    jobs.run("predict", predict)
    assert [r.name for r in session.rows] == ["a.png", "b.png"] and done == [True]
    assert session.counts() == {"faces": 1, ERROR_KEY: 1}
    session.set_filter("faces")
    assert [session.shown(r) for r in session.rows] == [True, False]

    second = _Model("second")
    session.add_inputs([tmp_path / "c.png"])  # queued; not yet rows when the model changes
    session.set_model(second)
    assert session.counts() == {PENDING_KEY: 2}
    assert jobs.args("predict") == (second, [tmp_path / "a.png", tmp_path / "b.png"])
    jobs.run("predict", predict)
    assert jobs.args("predict") == (second, [tmp_path / "c.png"])  # the kept input follows

    session.clear()
    assert not session.rows and not session.busy and not jobs.is_running("predict")


def test_features_and_the_paper_recipe_reach_the_run(tmp_path: Path):
    jobs = ManualJobs()
    start = TrainForm(TrainConfig(batch_size=16, seed=7), GridSpec((0.3,), (2,)))
    session = TrainingSession(jobs, tmp_path / "runs", start)
    assert session.form.config.features == "pretrained"  # the trainer's default
    session.set_form_text(features="pixels")
    assert session.form.config.features == "pixels"
    session.set_form_text(features="pretrained")

    session.use_paper_recipe()
    assert session.form_text == FormText(
        features="pixels", split="paper", head="mlp", l2=", ".join(map(str, GridSpec().l2)),
        learning_rates="0.01, 0.001", epochs="1, 3, 5", batch_size="16", seed="7", heads="1",
    )  # fmt: skip
    assert session.form == TrainForm(
        TrainConfig(features="pixels", split="paper", head="mlp", batch_size=16, seed=7, heads=1), PAPER_GRID
    )
    assert session.grid == PAPER_GRID  # the table previews the paper's grid

    session.set_dataset(str(make_dataset(tmp_path / "d", 2)))
    jobs.run("scan")
    assert session.start()
    _path, config, grid, _runs = jobs.args("train")
    assert config == TrainConfig(features="pixels", split="paper", head="mlp", batch_size=16, seed=7, heads=1)
    assert grid == PAPER_GRID
    session.set_form_text(features="pretrained")  # ignored while the run uses the form
    session.use_paper_recipe()
    assert session.form.config.features == "pixels"


def test_the_heads_field_takes_auto_or_a_count_within_the_dataclass_limits():
    def mlp_with(heads: str):
        return validate(dataclasses.replace(_text_with("heads", heads), head="mlp"))

    assert mlp_with("auto").form.config.heads == 0
    assert mlp_with(" ").form.config.heads == 0
    assert mlp_with("3").form.config.heads == 3
    assert "Heads must be a whole number or auto" in mlp_with("many").errors["heads"]
    assert "from 0 (auto) to 64" in mlp_with("65").errors["heads"]


def test_the_linear_head_is_one_model_and_its_l2_field_is_checked_like_the_cli():
    default = validate(FormText.from_form(TrainForm()))
    assert default.head == "linear" and default.unused("learning_rates") and not default.unused("l2")
    assert "The linear head is one model" in validate(_text_with("heads", "3")).errors["heads"]
    assert validate(_text_with("heads", "1")).form.config.heads == 1
    assert validate(_text_with("l2", "0.5, 0.05")).form.grid.l2 == (0.05, 0.5)  # normalised, ascending
    assert "L2 weights must be above 0" in validate(_text_with("l2", "0")).errors["l2"]
    assert "L2 weights must be numbers" in validate(_text_with("l2", "x")).errors["l2"]
    pixels = validate(_text_with("features", "pixels"))
    assert pixels.head == "mlp" and pixels.unused("l2")


def test_unknown_features_are_refused_by_the_dataclass():
    result = validate(_text_with("features", "landscape"))
    assert result.form is None and "Unknown features 'landscape'" in result.errors["features"]


def test_prediction_session_counts_and_filters_unsure_rows(tmp_path: Path):
    from facecomic_gui.predict import jobs as predict_jobs

    jobs = ManualJobs()
    session = PredictionSession(jobs)
    session.set_model(_Model("m"))
    inputs = [tmp_path / f"{n}.png" for n in "abcd"]
    session.add_inputs(inputs)
    made = (
        _prediction("faces"),
        _prediction("faces", "unlike training images"),
        _prediction("comics", "low confidence"),
        _prediction(None),
    )

    def predict(model, inputs, *, cancel):
        yield predict_jobs.ImagesFound(tuple(inputs))
        yield predict_jobs.BatchPredicted(0, made)

    jobs.run("predict", predict)
    assert session.counts() == {"faces": 2, "comics": 1, ERROR_KEY: 1, UNSURE_KEY: 2}
    session.set_filter(UNSURE_KEY)
    assert [session.shown(r) for r in session.rows] == [False, True, True, False]
    session.set_model(_Model("other"))  # the Unsure filter is kept across models
    assert session.label_filter == UNSURE_KEY


def test_gallery_session_filters_a_cell_and_sorts_by_confidence():
    from facecomic_gui.train.gallery_session import GallerySession, GallerySource
    from trainer.model.results import EvaluatedImage

    images = (
        EvaluatedImage("comics/a.jpg", 0, (0.4, 0.6)),
        EvaluatedImage("comics/b.jpg", 0, (0.1, 0.9)),
        EvaluatedImage("comics/c.jpg", 0, (0.8, 0.2)),
        EvaluatedImage("faces/d.jpg", 1, (0.3, 0.7)),
    )
    val = (EvaluatedImage("faces/e.jpg", 1, (0.6, 0.4)),)
    session = GallerySession(GallerySource(("comics", "faces"), "/data", {"holdout": images, "val": val}))
    assert [i.path for i in session.images] == ["comics/b.jpg", "comics/a.jpg"]  # worst mistake first
    assert session.confusion_matrix() == [[1, 2], [0, 1]]
    session.set_descending(False)
    assert [i.path for i in session.images] == ["comics/a.jpg", "comics/b.jpg"]
    session.show_cell(1, 0, "val")
    assert [i.path for i in session.images] == ["faces/e.jpg"] and session.selected == 0
    assert session.full_path(session.images[0]) == "/data/faces/e.jpg"
    with pytest.raises(ValueError):
        session.show_cell(2, 0)


def test_runs_session_refuses_bad_names(tmp_path: Path):
    from facecomic_gui.runs.session import name_problem

    assert name_problem("good run 1") is None
    for bad in ("", "  ", "a/b", ".hidden", "x" * 200, " lead"):
        assert name_problem(bad), bad


def test_predict_job_leaves_the_window_a_core_for_decoding(tmp_path: Path, monkeypatch):
    """Decode threads contend with the window for the GIL; the job keeps one core for it."""
    import os

    from facecomic_gui.predict import jobs as predict_jobs
    from trainer.common.cancel import CancelToken
    from trainer.prediction import predictor as predictor_module

    seen = {}

    class FakePredictor:
        def __init__(self, model, budget) -> None:
            seen["budget"] = budget

        def predict_batches(self, sources, *, batch_size, cancel):
            yield [_prediction("faces")]

    monkeypatch.setattr(predictor_module, "Predictor", FakePredictor)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    image = tmp_path / "a.png"
    image.write_bytes(b"")
    events = list(predict_jobs.predict_job(_Model("m"), [image], cancel=CancelToken()))
    assert (seen["budget"].decode_workers, seen["budget"].lanes) == (3, 4)
    assert isinstance(events[-1], predict_jobs.BatchPredicted)


def test_predictions_after_an_in_app_training_run_get_the_lanes_they_had_before(tmp_path: Path):
    """Training in the app takes one lane fewer than the cores; the predictions after it must not
    inherit that (torch's thread count once leaked from a run into every later prediction)."""
    import torch

    from facecomic_gui.common.cpu import prediction_budget
    from facecomic_gui.train import jobs as train_jobs
    from trainer.common.cancel import CancelToken
    from trainer.common.configs import GridSpec, TrainConfig
    from trainer.prediction.predictor import Predictor

    before = (prediction_budget(), torch.get_num_threads())
    root = make_dataset(tmp_path / "d", 8)
    run = train_jobs.training_job(
        str(root),
        TrainConfig(features="pixels"),
        GridSpec((0.1,), (1,)),
        tmp_path / "runs",
        cancel=CancelToken(),
    )
    while True:
        try:
            next(run)
        except StopIteration as stop:
            outcome = stop.value
            break
    assert (prediction_budget(), torch.get_num_threads()) == before
    assert Predictor(outcome.model, prediction_budget()).budget == before[0]


def test_the_paper_recipe_button_sets_what_the_cli_s_recipe_sets():
    from facecomic_gui.train.form import paper_recipe
    from trainer.common.configs import RECIPES

    form = validate(paper_recipe(FormText.from_form(TrainForm(TrainConfig(seed=3, batch_size=32))))).form
    config, grid = RECIPES["paper"]
    assert form.config == dataclasses.replace(config, seed=3, batch_size=32) and form.grid == grid
