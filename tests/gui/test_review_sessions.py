"""The review state without Qt: corrections (marks, add to a data set) and Sort into folders
(plan, run, cancel, undo), with jobs run inline."""

from __future__ import annotations

from pathlib import Path

from facecomic_gui.common.corrections import CorrectionsSession, shortcut_classes
from facecomic_gui.predict.review import uncertainty_key
from facecomic_gui.predict.session import PredictionRow
from facecomic_gui.predict.sort_session import READY, SortSession
from tests.gui.fake_jobs import ManualJobs
from tests.trainer.sort_helpers import FakePrediction
from trainer.data.synthetic import make_dataset


def test_marks_toggle_follow_moved_files_and_are_saved_once_added(tmp_path: Path):
    jobs = ManualJobs()
    corrections = CorrectionsSession(jobs)
    seen = []
    corrections.changed.connect(seen.append)
    outside = make_dataset(tmp_path / "outside", 2, seed=3)
    a, b = outside / "faces" / "0.png", outside / "comics" / "1.png"
    corrections.mark([a, b], "comics", ["faces", "comics"])
    assert [c.wrong for c in corrections.marks.values()] == [True, False]
    corrections.toggle([a, b], "comics")  # both already comics: cleared
    assert corrections.marks == {} and len(seen) == 2
    corrections.toggle([a], "comics", ["faces"])
    corrections.relocate({str(a): str(tmp_path / "moved.png")})
    assert corrections.true_class(tmp_path / "moved.png") == "comics" and corrections.get(a) is None
    corrections.relocate({str(tmp_path / "moved.png"): str(a)})

    data = make_dataset(tmp_path / "data", 3)
    added = []
    corrections.added.connect(added.append)
    assert corrections.add_to_dataset(str(data)) and corrections.adding
    jobs.run("add-to-dataset")
    assert not corrections.adding and corrections.unsaved() == []
    assert added[0].counts == {"comics": 1} and corrections.last_dataset == str(data)
    assert corrections.get(a).added_to == str(data)
    assert not corrections.add_to_dataset(str(data))  # nothing left to add


def test_the_keys_follow_the_display_names():
    assert shortcut_classes(["comics", "faces"]) == {"C": "comics", "F": "faces"}
    assert shortcut_classes(["Comic", "face"]) == {"C": "Comic", "F": "face"}
    assert shortcut_classes(["cats", "dogs"]) == {}


def test_uncertain_first_order():
    class Ok(FakePrediction):
        @property
        def ok(self):
            return self.error is None

        @property
        def unsure(self):
            return bool(self.flag)

    rows = [
        PredictionRow(n, n, Path(n), Ok(n, "faces", c, f, e))
        for n, c, f, e in [
            ("sure", 0.98, "", None),
            ("close", 0.51, "", None),
            ("flag", 0.9, "low confidence", None),
            ("bad", None, "", "broken"),
        ]
    ]
    rows.append(PredictionRow("pending", "pending", Path("pending"), None))
    assert [r.name for r in sorted(rows, key=uncertainty_key)] == ["flag", "close", "sure", "bad", "pending"]


def sort_session(tmp_path: Path, move: bool = True):
    pile = tmp_path / "pile"
    pile.mkdir()
    predictions = []
    for i, (label, flag) in enumerate([("faces", ""), ("comics", ""), ("faces", "low confidence")]):
        path = pile / f"{i}.jpg"
        path.write_bytes(b"picture %d" % i)
        predictions.append(_ok(FakePrediction(str(path), label, 0.9, flag)))
    predictions.append(_ok(FakePrediction(str(pile / "x.jpg"), error="broken")))
    jobs = ManualJobs()
    return jobs, SortSession(jobs, predictions, ("comics", "faces"), None, move=move), pile


def _ok(p: FakePrediction):
    class Answer(FakePrediction):
        @property
        def ok(self):
            return self.error is None

    return Answer(p.source, p.label, p.confidence, p.flag, p.error)


def test_the_plan_the_run_and_undo(tmp_path: Path):
    jobs, session, pile = sort_session(tmp_path)
    assert session.plan_error == "Choose the folder to sort into." and not session.can_start
    session.set_target(str(pile))
    assert "is inside the target folder" in session.plan_error
    session.set_target(str(tmp_path / "out"))
    assert session.counts() == {
        "comics": 1, "faces": 1, "unsure/not-a-face": 0, "unsure/unlike-training-images": 0, "unsure/low-confidence": 1,
    }  # fmt: skip
    assert len(session.plan.left_out) == 1
    moved = []
    session.files_moved.connect(moved.append)
    assert session.start() and session.busy
    jobs.run("sort")
    assert session.state == READY and session.summary.actions == {"moved": 3}
    assert session.note.startswith("Moved 3 images into")
    assert sorted(Path(p).name for p in moved[0]) == ["0.jpg", "1.jpg", "2.jpg"]
    assert not session.can_start and session.can_undo  # nothing left to sort; the sort can be undone
    assert session.undo()
    jobs.run("sort")
    assert session.note == "Undone: 3 moved back." and not session.can_undo
    assert sorted(p.name for p in pile.iterdir()) == ["0.jpg", "1.jpg", "2.jpg"]
    assert moved[1] == {v: k for k, v in moved[0].items()}
    assert session.can_start  # the plan is back


def test_cancel_stops_between_images_and_sorting_again_finishes(tmp_path: Path):
    jobs, session, _ = sort_session(tmp_path, move=False)
    session.set_target(str(tmp_path / "out"))
    once = []

    def cancel_after_the_first(done: int, _total: int) -> None:
        if not once:
            once.append(done)
            session.cancel()

    session.progressed.connect(cancel_after_the_first)
    session.start()
    jobs.run("sort")
    assert session.note.startswith("Cancelled after 1 of 3") and session.can_undo and session.can_start
    session.start()
    jobs.run("sort")
    assert session.summary.actions == {"done before": 1, "copied": 2}


def test_the_show_choices_of_the_command_line_are_the_sessions_filters():
    from facecomic_gui.predict import session
    from facecomic_gui.predict.review import SHOW_CHOICES, UNCERTAIN_FIRST_KEY

    assert SHOW_CHOICES == {
        "all": None, "unsure": session.UNSURE_KEY, "not-a-face": session.NOT_A_FACE_KEY,
        "unreadable": session.ERROR_KEY, "uncertain-first": UNCERTAIN_FIRST_KEY,
    }  # fmt: skip
