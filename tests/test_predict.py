"""Your own digit: datasets.images (reading, MNIST-like preprocessing) and train.py --predict,
on digits drawn from MNIST's test images as a person would hand them in: black on white,
somewhere on a larger page, at another size, as PNG or JPEG."""
import io
import re
import sys
import warnings
import zlib

import numpy as np
import pytest

import framework as F
from datasets import load_mnist
from datasets.images import MAX_PIXELS, NOISE, ImageError, mnist_like, read_image
from experiments.cli import main

Image = pytest.importorskip("PIL.Image")

SCALES = (1.5, 2, 3, 4.5, 7)


@pytest.fixture(scope="module")
def mnist(tmp_path_factory, mnist_files):
    """MNIST as (N, 1, 28, 28) float32 images in [0, 1]."""
    return load_mnist(tmp_path_factory.mktemp("mnist"), mirrors=[str(mnist_files)],
                      progress=False, flatten=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist):
    """A small MLP trained for two epochs on 10,000 training images (about 92% on the test set,
    a few seconds), saved as a checkpoint: (model, path)."""
    (x, t), _ = mnist
    rng = np.random.default_rng(0)
    model = F.Sequential(F.Affine(784, 64, rng=rng), F.ReLU(), F.Affine(64, 10, rng=rng),
                         input_shape=(1, 28, 28))
    F.fit(model, F.SoftmaxCrossEntropy(), F.Adam(model.parameters(), lr=3e-3),
          (x[:10_000], t[:10_000]), epochs=2, batch_size=100, rng=rng, callbacks=[])
    path = tmp_path_factory.mktemp("model") / "model.npz"
    model.save(path)
    return model, path


def hand_drawn(digit, i, folder):
    """MNIST digit (28, 28) in [0, 1] as a person's file: inverted to black on white, scaled
    by SCALES[i % 5], placed off-centre on a larger page; a grey PNG, an RGB JPEG, or a PNG
    whose page is transparent, by turns. Returns its path."""
    side = round(28 * SCALES[i % len(SCALES)])
    ink = Image.fromarray(np.round(255 * digit).astype(np.uint8)).resize((side, side),
                                                                          Image.BILINEAR)
    page = (side + 40 + 7 * i, side + 30 + 5 * i)
    where = (7 * i, 30 - i % 30)
    kind = i % 3
    if kind == 0:
        image = Image.new("L", page, 255)
        image.paste(Image.eval(ink, lambda v: 255 - v), where)
        path = folder / f"digit{i}.png"
    elif kind == 1:
        image = Image.new("RGB", page, (250, 248, 240))  # off-white paper, blue ink
        red, green, blue = (Image.eval(ink, lambda v, paper=paper, k=k: max(0, paper - v // k))
                            for paper, k in ((250, 1), (248, 1), (240, 3)))
        image.paste(Image.merge("RGB", (red, green, blue)), where)
        path = folder / f"digit{i}.jpg"
    else:
        image = Image.new("LA", page, (255, 0))  # transparent; black strokes of alpha = ink
        image.paste(Image.merge("LA", [Image.new("L", ink.size, 0), ink]), where)
        path = folder / f"digit{i}.png"
    image.save(path)
    return path


def predicted(output):
    """{file name: class} from --predict's lines `NAME: CLASS  (...)`."""
    return {line.split(": ")[0]: int(line.split(": ")[1].split()[0])
            for line in output.splitlines() if "  (" in line}


def stderr(capsys):
    """What went to stderr, unwrapped (messages are wrapped at 100 columns)."""
    return " ".join(capsys.readouterr().err.split())


def test_predict_agrees_with_the_model_on_the_original_digits(mnist, trained, tmp_path, capsys):
    _, (x_test, _) = mnist
    model, path = trained
    count = 40
    files = [hand_drawn(x_test[i, 0], i, tmp_path) for i in range(count)]
    assert main(["--predict", str(path), *map(str, files)]) == 0
    said = predicted(capsys.readouterr().out)
    expected = model.predict(x_test[:count])
    agree = sum(said[str(f)] == k for f, k in zip(files, expected))
    assert len(said) == count and agree >= 38, f"{agree} of {count} agree"


def test_an_mnist_digit_comes_back_nearly_as_it_was(mnist):
    """MNIST's digits are already what mnist_like makes: it changes them by no more than the
    ink it drops as paper (NOISE) in nine of ten."""
    _, (x_test, _) = mnist
    changes = np.array([np.abs(mnist_like(x[0]) - x[0]).max() for x in x_test[:100]])
    assert np.mean(changes <= NOISE) >= 0.9


def test_mnist_like_inverts_crops_scales_into_20_and_centres_the_mass():
    page = np.ones((300, 120), np.float32)  # white, a dark bar 200 tall and 40 wide
    page[50:250, 30:70] = 0.2
    seen = mnist_like(page)
    rows, cols = np.flatnonzero(seen.any(axis=1)), np.flatnonzero(seen.any(axis=0))
    assert (len(rows), len(cols)) == (20, 4)  # 200x40 keeps its 5:1 in a 20-pixel box
    assert seen.max() == 1  # the darkest stroke is full ink, as MNIST's are
    mass = seen.sum()
    assert abs(seen.sum(axis=1) @ np.arange(28) / mass - 14) <= 0.5
    assert abs(seen.sum(axis=0) @ np.arange(28) / mass - 14) <= 0.5
    np.testing.assert_array_equal(mnist_like(1 - page), seen)  # white on black: the same


def test_a_page_without_ink_is_refused():
    with pytest.raises(ImageError, match="page.png: no digit found"):
        mnist_like(np.full((50, 50), 0.9, np.float32), "page.png")


def test_npy_on_stdin(trained, mnist, monkeypatch, capsys):
    _, (x_test, _) = mnist
    model, path = trained
    data = io.BytesIO()
    np.save(data, np.round(255 * x_test[7, 0]).astype(np.uint8))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data.getvalue())))
    assert main(["--predict", str(path), "-"]) == 0
    assert predicted(capsys.readouterr().out) == {"-": model.predict(x_test[7])}


def test_show_draws_beside_the_input_into_the_current_folder(trained, mnist, tmp_path,
                                                             monkeypatch):
    _, (x_test, _) = mnist
    digit = hand_drawn(x_test[0, 0], 0, tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["--predict", str(trained[1]), str(digit), str(digit), "--show"]) == 0
    assert Image.open(tmp_path / "digit0-seen.png").size[0] > 500
    assert (tmp_path / "digit0-seen-2.png").exists()  # the same name twice: both kept


def test_show_never_writes_into_a_run_folder(trained, mnist, tmp_path, capsys):
    _, (x_test, _) = mnist
    digit = hand_drawn(x_test[0, 0], 0, tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: run\n")
    assert main(["--predict", str(trained[1]), str(digit), "--show", "--out", str(run)]) == 2
    assert "is a run's folder" in stderr(capsys)
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]


def test_a_file_that_is_not_an_image_is_refused_by_name(trained, tmp_path, capsys):
    fake = tmp_path / "digit7.png"
    fake.write_text("name: quick\n")
    assert main(["--predict", str(trained[1]), str(fake)]) == 2
    err = stderr(capsys)
    assert f"{fake}: not a PNG or JPEG image" in err and "Traceback" not in err


def test_a_truncated_image_is_refused(tmp_path):
    whole = tmp_path / "whole.png"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(noise).save(whole)  # 4 kB that do not compress
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[:2000])
    with pytest.raises(ImageError, match="cut.png: a truncated or damaged image"):
        read_image(cut)


def test_an_image_too_large_is_refused_from_its_header(tmp_path):
    small = tmp_path / "small.png"
    Image.new("L", (8, 8), 255).save(small)
    data = bytearray(small.read_bytes())
    side = 5000  # 25 megapixels claimed; nothing decoded to find out
    data[16:24] = side.to_bytes(4, "big") * 2  # IHDR width and height, then its CRC
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="^" + re.escape(
            f"{bomb}: 5000x5000 pixels, more than the {MAX_PIXELS:,} allowed")):  # not "damaged"
        read_image(bomb)


@pytest.mark.parametrize("shape", [(1, 28, 28), (28, 28, 1), (1, 784), (784, 1), (1, 1, 28, 28)])
def test_a_npy_image_with_axes_of_one_is_read_as_the_image(tmp_path, shape):
    # (1, 784) is x_test[:1]: a batch of one flat row, not a picture 1 pixel high
    image = np.random.default_rng(5).random((28, 28)).astype(np.float32)
    np.save(tmp_path / "flat.npy", image)
    np.save(tmp_path / "channel.npy", image.reshape(shape))
    np.testing.assert_array_equal(read_image(tmp_path / "channel.npy"),
                                  read_image(tmp_path / "flat.npy"))
    for rows in ((2, 784), (784, 3)):  # np.save(f, x_test[:2]): two digits, not one picture
        np.save(tmp_path / "rows.npy", np.zeros(rows, np.float32))
        with pytest.raises(ImageError, match=f"{min(rows)} MNIST rows of 784"):
            read_image(tmp_path / "rows.npy")
    np.save(tmp_path / "rgb.npy", np.zeros((28, 28, 3), np.float32))
    with pytest.raises(ImageError, match=r"one greyscale array .* got shape \(28, 28, 3\)"):
        read_image(tmp_path / "rgb.npy")


def test_a_npy_image_of_nan_is_refused_saying_so(tmp_path):
    np.save(tmp_path / "nan.npy", np.full((28, 28), np.nan, np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning beside the message
        with pytest.raises(ImageError, match="^" + re.escape(
                f"{tmp_path / 'nan.npy'}: 784 pixels are NaN or infinite")):
            read_image(tmp_path / "nan.npy")


def test_a_pickled_npy_is_refused_unread(tmp_path):
    path = tmp_path / "evil.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ImageError, match="evil.npy: a .npy image holds uint8 or float pixels"):
        read_image(path)


def test_without_pillow_the_message_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "digit.png"
    Image.new("L", (8, 8), 255).save(path)
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImageError, match=r'needs Pillow.*pip install -e "\.\[plot\]"'):
        read_image(path)


def test_predict_without_images_or_with_a_broken_checkpoint_exits_2(tmp_path, capsys):
    assert main(["--predict", str(tmp_path)]) == 2
    assert "and which images?" in stderr(capsys)
    broken = tmp_path / "model.npz"
    broken.write_bytes(b"PK\x03\x04 not really")
    digit = tmp_path / "digit.png"
    Image.new("L", (8, 8), 255).save(digit)
    assert main(["--predict", str(broken), str(digit)]) == 2
    assert f"--predict {broken}:" in stderr(capsys)


def test_a_model_for_other_inputs_is_refused(tmp_path, capsys):
    path = tmp_path / "blobs.npz"
    F.Sequential(F.Affine(8, 3, rng=np.random.default_rng(0))).save(path)
    digit = tmp_path / "digit.png"
    Image.new("L", (8, 8), 255).save(digit)
    assert main(["--predict", str(path), str(digit)]) == 2
    assert "takes examples of shape (8,), not 28x28 greyscale images" in stderr(capsys)


@pytest.mark.parametrize("layers, input_shape", [
    # 784 numbers, but not a digit's: 4 maps of 14x14, or 3 colour channels
    ([F.Flatten(), F.Affine(784, 3)], (4, 14, 14)),
    ([F.Conv2D(3, 2, 3), F.Flatten(), F.Affine(2 * 26 * 26, 3)], None),  # no input_shape saved
])
def test_a_model_for_other_images_is_refused(tmp_path, capsys, layers, input_shape):
    path = tmp_path / "other.npz"
    F.Sequential(*layers, input_shape=input_shape).save(path)
    digit = tmp_path / "digit.png"
    Image.new("L", (28, 28), 255).save(digit)
    assert main(["--predict", str(path), str(digit)]) == 2
    shape = input_shape or (3, 28, 28)
    assert f"takes examples of shape {shape}, not 28x28 greyscale images" in stderr(capsys)


def test_a_model_saved_without_its_input_shape_that_refuses_a_digit_says_so(tmp_path, capsys,
                                                                            mnist):
    path = tmp_path / "guess.npz"  # a Flatten first says nothing of the images it takes
    F.Sequential(F.Flatten(), F.Affine(100, 3)).save(path)
    np.save(tmp_path / "digit.npy", mnist[1][0][0])
    assert main(["--predict", str(path), str(tmp_path / "digit.npy")]) == 2
    said = stderr(capsys)
    assert "the model does not take a 28x28 digit: affine1: expects a batch of 100" in said
