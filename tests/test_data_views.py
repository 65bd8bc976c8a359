"""The plain view (validation, `error_rate`, every non-TTA prediction) against the augmented views of training and TTA:
the same aspect, and the same scale on average."""
import pytest
import torch
from fastai.vision.all import Pipeline, TensorImage

from paddy.data.loaders import batch_tfms
from paddy.data.tfms import train_scale
from paddy.spec import Experiment

ROWS, COLS = 96, 72  # a portrait image, as the competition's


def ramps(n: int = 1) -> TensorImage:
    "Images whose first channel is x / width and second y / height: a view's spans of them are its share of each side."
    y, x = torch.meshgrid(torch.linspace(0, 1, ROWS), torch.linspace(0, 1, COLS), indexing='ij')
    return TensorImage(torch.stack([x, y, torch.zeros_like(x)])[None].expand(n, 3, ROWS, COLS).clone())


def spans(out) -> tuple[float, float]:
    "The share of the width and of the height that views `out` show, the mean over the batch, read off the ramps."
    c = out.shape[-1] // 2, out.shape[-2] // 2
    sx = (out[:, 0, c[1], -1] - out[:, 0, c[1], 0]).abs().mean() * COLS / (COLS - 1)  # abs: a flipped view counts
    sy = (out[:, 1, -1, c[0]] - out[:, 1, 0, c[0]]).abs().mean() * ROWS / (ROWS - 1)
    return float(sx), float(sy)


def views(exp: Experiment, split: int, batches: int = 1):
    "`batches` batches of two views of the ramps, through `exp`'s batch transforms of `split` (the crop is per batch)."
    fs = batch_tfms(exp)
    for f in fs:  # lighting would move the ramps' values; the geometry is what is compared
        if type(f).__name__ in ('Brightness', 'Contrast'): f.p = 0.
    pipe = Pipeline(fs, split_idx=split)
    return torch.cat([pipe(ramps(2)) for _ in range(batches)])


@pytest.mark.parametrize('aug', [(64, 48), (48, 48), 64])
def test_the_plain_view_keeps_the_aspect_and_the_mean_scale_of_the_training_views(aug):
    exp = Experiment(name='x', arch='resnet18', item_size=(ROWS, COLS), aug_size=aug, min_scale=0.75)
    plain = views(exp, split=1)
    rows, cols = (aug, aug) if isinstance(aug, int) else aug
    assert tuple(plain.shape[-2:]) == (rows, cols)
    sx, sy = spans(plain)
    if rows / cols == ROWS / COLS:  # the shape of the image: a centre crop of each side alike, not a square cut out
        assert sx == pytest.approx(train_scale(0.75), abs=0.03) and sy == pytest.approx(sx, abs=0.03)
    torch.manual_seed(0)
    tx, ty = spans(views(exp, split=0, batches=300))
    # a training view shows, on average, what the plain view shows: neither zoomed in against the other
    assert tx == pytest.approx(sx, abs=0.04) and ty == pytest.approx(sy, abs=0.04)


def test_train_scale_is_the_mean_side_a_training_crop_and_zoom_keep():
    assert train_scale(1.0, max_zoom=1.0) == 1.0
    assert train_scale(0.75, max_zoom=1.0) == pytest.approx(0.9347, abs=1e-4)  # E[sqrt(U(0.75, 1))]
    assert train_scale(0.75) == pytest.approx(0.9347 * (0.25 + 0.75 * 0.95310), abs=1e-3)  # and E[1/z], z ~ U(1, 1.1)
