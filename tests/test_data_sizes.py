"""The size census from the headers alone, on real photos and the digits, and the warning it gives train."""
import pandas as pd
from typer.testing import CliRunner
from conftest import landscape
from paddy.cli import app
from paddy.data import read_train
from paddy.data.sizes import against, census, summary

runner = CliRunner()


def test_sizes_on_the_rice_photos(rice):
    df = census(rice, workers=2)
    assert len(df) == 140
    assert (df.width == 480).all()
    assert (df.height == 640).all()
    assert (df.orientation == 'portrait').all()
    r = runner.invoke(app, ['sizes', '--data', str(rice)])
    assert r.exit_code == 0, r.output
    assert 'train: 120 images' in r.output and 'test: 20 images' in r.output
    assert r.output.count('480×640') == 2 and 'not 480×640' not in r.output  # no odd ones to list


def test_sizes_on_the_demo_digits(tmp_path):
    from paddy.demo import build_digits
    df = census(build_digits(tmp_path / 'demo'))
    n_test = len(pd.read_csv(tmp_path / 'demo' / 'sample_submission.csv'))
    assert (df.split == 'train').sum() == 1797 - n_test == len(pd.read_csv(tmp_path / 'demo' / 'train.csv'))
    assert ((df.width == 64) & (df.height == 64)).all() and (df.orientation == 'square').all()
    assert f'train: {1797 - n_test} images' in summary(df) and '64×64' in summary(df)


def test_sizes_lists_the_odd_ones_and_train_warns_of_them(comp):
    landscape(comp)
    text = summary(census(comp))
    assert 'train: 36 images' in text and '1 not 36×48:' in text and 'dog002.jpg  48×36 landscape' in text
    df = read_train(comp)
    msg = against(df, (48, 32))
    assert msg.startswith('1 training images are not portrait like item_size (48, 32)') and 'dog002.jpg' in msg
    assert against(df, 32) is None and against(df, (32, 48)).startswith('35 training images')
