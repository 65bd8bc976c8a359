"""CPU only, no workers, no network, and every output under a temporary folder."""
import os

os.environ['CUDA_VISIBLE_DEVICES'] = ''   # the tests must pass, and mean the same, without a GPU
os.environ['PADDY_WORKERS'] = '0'
os.environ['HF_ENDPOINT'] = 'http://127.0.0.1:9'  # a closed port: offline for sure, and it fails at once
os.environ.pop('PADDY_DATA', None)
if os.environ.get('PYTEST_XDIST_WORKER'):
    # `make test` runs two workers on the two cores: one thread each, in the workers and in the processes they start
    # (tiny models gain nothing from a second thread; two workers fighting for four threads lose)
    os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = '1'

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
RICE = ROOT.parent / 'shared' / 'data' / 'rice'


@pytest.fixture(scope='session', autouse=True)
def one_thread_a_worker():
    if os.environ.get('PYTEST_XDIST_WORKER'):
        import torch
        torch.set_num_threads(1)


@pytest.fixture(scope='session', autouse=True)
def item_cache(tmp_path_factory):
    "The item cache under the test session's folder, for module fixtures too (they start before `workdir`)."
    os.environ['PADDY_ITEM_CACHE'] = str(tmp_path_factory.mktemp('item-cache'))


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch, tmp_path_factory):
    "Run each test in its own folder, with the project's experiments in reach and a shared weights cache."
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'experiments').symlink_to(ROOT / 'experiments')
    monkeypatch.setenv('PADDY_CACHE', str(tmp_path_factory.getbasetemp() / 'paddy-cache'))
    monkeypatch.setenv('HF_HUB_CACHE', str(tmp_path / 'hf-empty'))
    for var in ('HF_HUB_OFFLINE', 'HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy'):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def make_comp(root: Path, labels=('cat', 'dog', 'fish'), n=12, n_test=6, size=(48, 36), seed=0) -> Path:
    "A tiny competition-layout folder the project has never seen: other labels, empty variety/age, shuffled test order."
    rng = np.random.default_rng(seed)
    rows = []
    for k, label in enumerate(labels):
        (root / 'train_images' / label).mkdir(parents=True)
        for j in range(n):
            img_id = f'{label}{j:03d}.jpg'
            # a class-coloured background with noise: learnable, but not trivially by one pixel
            arr = np.clip(rng.normal(60 + 70 * k, 40, (*size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / 'train_images' / label / img_id)
            rows.append((img_id, label, '', ''))
    pd.DataFrame(rows, columns=['image_id', 'label', 'variety', 'age']).to_csv(root / 'train.csv', index=False)
    (root / 'test_images').mkdir()
    ids = [f't{j:03d}.jpg' for j in range(n_test)]
    for j, i in enumerate(ids):
        arr = np.clip(rng.normal(60 + 70 * (j % len(labels)), 40, (*size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(root / 'test_images' / i)
    pd.DataFrame({'image_id': list(rng.permutation(ids)),
                  'label': 'normal'}).to_csv(root / 'sample_submission.csv', index=False)
    return root


def with_variety(comp: Path) -> Path:
    "`comp` with a variety on every row of its train.csv, for the variety head."
    df = pd.read_csv(comp / 'train.csv')
    df['variety'] = ['early' if i % 2 else 'late' for i in range(len(df))]
    df.to_csv(comp / 'train.csv', index=False)
    return comp


def weights_file(path: Path) -> Path:
    "test_convnext's random weights saved to `path`: a weights file, so fine_tune freezes, then unfreezes."
    import timm, torch
    torch.save(timm.create_model('test_convnext', pretrained=False).state_dict(), path)
    return path


def landscape(comp: Path, img_id='dog002.jpg') -> Path:
    "Turn one of `comp`'s portrait 36×48 training images on its side."
    p = comp / 'train_images' / img_id[:3] / img_id
    Image.open(p).transpose(Image.Transpose.ROTATE_90).save(p)
    return p


@pytest.fixture
def comp(tmp_path):
    return make_comp(tmp_path / 'comp')


@pytest.fixture
def rice():
    if not RICE.is_dir(): pytest.skip(f'the real rice photos are not at {RICE}')
    return RICE


TINY = """arch = 'test_convnext'
pretrained = False
item_size = 32
aug_size = 32
epochs = 1
bs = 8
"""


@pytest.fixture
def tiny_spec(tmp_path):
    "A tiny experiment file outside experiments/, as a user would pass by path."
    p = tmp_path / 'specs' / 'tiny.py'
    p.parent.mkdir()
    p.write_text(TINY)
    return p

