"""The error gallery: a confusion-matrix cell opens exactly its images, worst mistakes first."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from facecomic_gui.common.corrections import CorrectionsSession
from facecomic_gui.common.thumbnails import ThumbnailCache
from facecomic_gui.train.gallery import TRUE, ErrorGalleryWidget
from facecomic_gui.train.gallery_session import GallerySession, GallerySource
from tests.gui.fake_jobs import ManualJobs
from tests.gui.test_train_tab import FAST, open_dataset
from trainer.model.results import EvaluatedImage


def train(qtbot, window, dataset: Path):
    tab = window.train_tab
    tab.set_form(FAST)
    open_dataset(qtbot, tab, dataset)
    with qtbot.waitSignal(tab.run_finished, timeout=120_000) as blocker:
        tab.start_training()
    return blocker.args[0]


def click_cell(qtbot, table, row: int, column: int) -> None:
    rect = table.visualItemRect(table.item(row, column))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_a_cell_click_opens_exactly_that_cells_images(qtbot, window, tiny_dataset: Path):
    outcome = train(qtbot, window, tiny_dataset)
    tab = window.train_tab
    matrix = outcome.result.holdout.confusion_matrix
    for true_label in range(2):
        for predicted in range(2):
            with qtbot.waitSignal(tab.gallery_opened, timeout=5_000) as opened:
                click_cell(qtbot, tab.holdout.confusion, true_label, predicted)
            gallery = opened.args[0]
            images = gallery.session.images
            assert gallery.model.rowCount() == len(images) == matrix[true_label][predicted]
            assert all(i.true_label == true_label and i.predicted == predicted for i in images)
            confidences = [i.confidence for i in images]
            assert confidences == sorted(confidences, reverse=True)  # most confidently wrong first
            names = ("Comic", "Real face")
            for row, image in enumerate(images):
                assert gallery.model.index(row, 1).data() == Path(image.path).name
                assert gallery.model.index(row, 2).data() == names[true_label]
                assert gallery.model.index(row, 3).data() == names[predicted]
    # The validation split of the chosen setting, from the same gallery.
    gallery.split_buttons.button(1).click()
    val = outcome.result.val_images
    assert gallery.session.split == "val"
    assert len(gallery.session.images) == sum(
        1
        for i in val
        if i.true_label == gallery.session.true_label and i.predicted == gallery.session.predicted_label
    )


def test_keyboard_moves_and_enter_opens_the_image(qtbot, window, tiny_dataset: Path):
    train(qtbot, window, tiny_dataset)
    tab = window.train_tab
    gallery = tab.open_gallery(1, 1)  # the right answers on faces: never empty on this data
    qtbot.waitExposed(gallery)
    assert gallery.session.selected == 0
    qtbot.keyClick(gallery.table, Qt.Key.Key_Down)
    assert gallery.session.selected == 1
    with qtbot.waitSignal(gallery.image_opened, timeout=5_000) as opened:
        qtbot.keyClick(gallery.table, Qt.Key.Key_Return)
    expected = gallery.session.full_path(gallery.session.images[1])
    assert opened.args[0] == expected and Path(expected).is_file()
    assert not gallery.viewer.image.pixmap().isNull()


def test_a_3000_image_gallery_asks_thumbnails_only_for_rows_in_view(qtbot, tmp_path: Path):
    images = tuple(
        EvaluatedImage(f"comics/{i}.jpg", 0, (0.2 + i / 10_000, 0.8 - i / 10_000)) for i in range(3000)
    )
    source = GallerySource(("comics", "faces"), str(tmp_path), {"holdout": images, "val": ()})
    thumbnails = ThumbnailCache(64)
    gallery = ErrorGalleryWidget(GallerySession(source), thumbnails)
    qtbot.addWidget(gallery)
    gallery.resize(800, 600)
    gallery.show()
    qtbot.waitExposed(gallery)
    assert gallery.model.rowCount() == 3000
    qtbot.waitUntil(lambda: gallery.model.thumbnail_requests > 0, timeout=5_000)  # the first paint
    visible = gallery.table.viewport().height() // gallery.table.rowHeight(0) + 2
    assert 0 < gallery.model.thumbnail_requests <= visible
    assert thumbnails.requested == gallery.model.thumbnail_requests
    assert not gallery.split_buttons.button(1).isEnabled()  # no validation images in this source
    gallery.close()
    assert thumbnails.requested == 0  # released with the gallery
    thumbnails.shutdown()


def test_marks_made_elsewhere_repaint_the_open_gallery(qtbot, tmp_path: Path):
    images = tuple(EvaluatedImage(f"comics/{i}.jpg", 0, (0.2, 0.8)) for i in range(3))
    source = GallerySource(("comics", "faces"), str(tmp_path), {"holdout": images, "val": ()})
    thumbnails = ThumbnailCache(64)
    corrections = CorrectionsSession(ManualJobs())
    gallery = ErrorGalleryWidget(GallerySession(source), thumbnails, corrections=corrections)
    qtbot.addWidget(gallery)
    repainted = []  # the true-class column (thumbnails arriving repaint their own column)
    gallery.model.dataChanged.connect(
        lambda top, bottom, *_: repainted.append(top.column() <= TRUE <= bottom.column())
    )
    gallery.show()
    qtbot.waitExposed(gallery)
    path = gallery.session.full_path(gallery.session.images[0])
    repainted.clear()
    corrections.mark([path], "faces", ["comics"])  # in the Predict tab, say
    assert any(repainted) and gallery.model.index(0, TRUE).data() == "✔ Real face"
    gallery.close()
    repainted.clear()
    corrections.unmark([path])  # a closed gallery no longer listens
    assert not any(repainted)
    gallery.show()  # reopened: the marks as they are now
    assert any(repainted) and gallery.model.index(0, TRUE).data() == "Comic"
    gallery.close()
    thumbnails.shutdown()
