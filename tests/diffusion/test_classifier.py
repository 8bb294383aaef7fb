"""The MNIST feature classifier trains, reports held-out accuracy, and round-trips through safetensors."""

import torch

from stylenorm.diffusion.classifier import (
    FEATURE_DIM,
    ClassifierConfig,
    DigitClassifier,
    load_digit_classifier,
    train_digit_classifier,
)


def test_a_short_training_beats_chance_and_reloads(tmp_path):
    output = tmp_path / "clf.safetensors"
    path, accuracy = train_digit_classifier(ClassifierConfig(steps=40, holdout=500, output=str(output)))
    assert path == output and output.with_suffix(".json").is_file()
    assert accuracy > 0.3  # chance is 0.1
    model = load_digit_classifier(output)
    images = torch.rand(4, 1, 28, 28) * 2 - 1
    assert model.features(images).shape == (4, FEATURE_DIM)


def test_features_accept_other_sizes_and_rgb():
    model = DigitClassifier().eval()
    assert model.features(torch.zeros(2, 3, 32, 32)).shape == (2, FEATURE_DIM)


def test_cli_trains_and_reports_accuracy(run_cli, tmp_path):
    output = tmp_path / "clf.safetensors"
    code, out, err = run_cli("diffusion", "train-classifier", "-o", output, "--steps", "20", "--holdout", "300")
    assert code == 0, err
    assert "held-out accuracy" in out and output.is_file()


def test_cli_rejects_unlabelled_data(run_cli, tmp_path):
    folder = tmp_path / "unlabelled"
    folder.mkdir()
    from PIL import Image

    for i in range(4):
        Image.new("L", (28, 28), i * 40).save(folder / f"{i}.png")
    code, out, err = run_cli("diffusion", "train-classifier", "--data", folder, "-o", tmp_path / "c.safetensors")
    assert code == 2 and err.startswith("error:") and "no labels" in err
    assert not (tmp_path / "c.safetensors").exists()


def test_cli_never_replaces_the_shipped_classifier(run_cli, user_data_folder):
    from stylenorm.checkpoints import shipped_weights

    shipped = shipped_weights("mnist_classifier")
    before = shipped.read_bytes()
    code, out, err = run_cli("diffusion", "train-classifier", "-o", shipped, "--steps", "2", "--holdout", "100")
    assert code == 2 and "shipped" in err and shipped.read_bytes() == before
    code, out, err = run_cli("diffusion", "train-classifier", "--steps", "2", "--holdout", "100")
    assert code == 0, err
    assert (user_data_folder / "weights" / "mnist_classifier.safetensors").is_file() and shipped.read_bytes() == before
