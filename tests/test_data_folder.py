import pandas as pd
import pytest

from paddy.data import find_data, read_train, tst_items, valid_ids
from paddy.errors import PaddyError


def test_data_is_found_in_order(comp, tmp_path, monkeypatch):
    other = tmp_path / 'other'
    other.mkdir()
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'paddy-disease-classification').symlink_to(comp, target_is_directory=True)
    assert find_data().resolve() == comp.resolve()
    monkeypatch.setenv('PADDY_DATA', str(comp))
    assert find_data() == comp
    with pytest.raises(PaddyError, match=r'lacks train_images, test_images, train.csv, sample_submission.csv'):
        find_data(other)


def test_missing_folder_says_how_to_get_it(monkeypatch):
    with pytest.raises(PaddyError) as e: find_data()
    msg = str(e.value)
    assert 'paddy download' in msg and '--data' in msg and 'PADDY_DATA' in msg
    monkeypatch.setenv('PADDY_DATA', '/nowhere')
    with pytest.raises(PaddyError, match=r'no competition data at /nowhere \(PADDY_DATA\)'): find_data()


def test_tst_items_follow_sample_submission(comp):
    ids, files = tst_items(comp)
    assert ids == pd.read_csv(comp / 'sample_submission.csv').image_id.tolist() != sorted(ids)
    assert [f.rsplit('/', 1)[1] for f in files] == ids


def test_missing_images_are_named(comp):
    (comp / 'train_images' / 'dog' / 'dog003.jpg').unlink()
    with pytest.raises(PaddyError, match='1 images in train.csv .*dog003.jpg'): read_train(comp)
    (comp / 'test_images' / 't002.jpg').unlink()
    with pytest.raises(PaddyError, match='missing from test_images/.*t002.jpg'): tst_items(comp)


def test_empty_variety_and_age_are_fine(comp):
    df = read_train(comp)
    assert (df.variety == '').all() and len(df) == 36


def test_split_is_fixed_by_seed_whatever_the_order():
    ids = [f'{i}.jpg' for i in range(100)]
    v = valid_ids(ids, 42)
    assert len(v) == 20 and v == valid_ids(list(reversed(ids)), 42)
    assert v != valid_ids(ids, 43)


def test_the_finder_takes_every_mount_kaggle_has_used(tmp_path):
    from paddy.data.mounts import mounts
    root = tmp_path / 'input'
    assert mounts('paddy-lib', root) == []
    for d in ('paddy-lib', 'competitions/paddy-lib', 'datasets/someone/paddy-lib', 'datasets/other/elsewhere'):
        (root / d).mkdir(parents=True)
    assert mounts('paddy-lib', root) == [root / 'paddy-lib', root / 'competitions/paddy-lib',
                                         root / 'datasets/someone/paddy-lib']


def test_train_in_a_notebook_finds_the_competition_where_kaggle_mounts_it_today(tmp_path, tiny_spec, monkeypatch):
    "Public kernels of 2026 read /kaggle/input/competitions/<slug>: paddy train finds it with no --data."
    from typer.testing import CliRunner
    from conftest import make_comp
    from paddy.cli import app
    monkeypatch.setenv('PADDY_KAGGLE_INPUT', str(tmp_path / 'kaggle' / 'input'))
    there = make_comp(tmp_path / 'kaggle' / 'input' / 'competitions' / 'paddy-disease-classification')
    r = CliRunner().invoke(app, ['train', str(tiny_spec)])
    assert r.exit_code == 0, r.output
    assert f'from {there}' in r.output and find_data() == there
