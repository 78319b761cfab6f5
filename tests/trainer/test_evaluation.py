"""What a run keeps for the error gallery: every holdout and validation image, scored."""

from __future__ import annotations

from trainer.model.model_file import load_model


def test_run_keeps_each_holdout_image_consistent_with_its_metrics(trained):
    result, _, root = trained
    images = result.holdout_images
    assert len(images) == result.holdout.size == sum(result.split_counts[2])
    # Every confusion-matrix cell is exactly the images with that true and predicted class.
    for true in range(2):
        for predicted in range(2):
            cell = [i for i in images if i.true_label == true and i.predicted == predicted]
            assert len(cell) == result.holdout.confusion_matrix[true][predicted]
    assert all((root / i.path).is_file() for i in images)
    assert all(abs(sum(i.probabilities) - 1) < 1e-5 for i in images)
    assert len(result.val_images) == sum(result.split_counts[1])


def test_evaluated_images_survive_the_model_file(trained):
    result, path, _ = trained
    loaded = load_model(path)
    holdout = loaded.evaluated_images("holdout")
    assert [i.path for i in holdout] == [i.path for i in result.holdout_images]
    assert [i.predicted for i in holdout] == [i.predicted for i in result.holdout_images]
    assert [i.flag for i in holdout] == [i.flag for i in result.holdout_images]
    assert loaded.dataset_root == result.dataset_root
    assert len(loaded.evaluated_images("val")) == len(result.val_images)
