"""Training images held on the device give the very batches the host path gives for the same seed; the GPU path is
taken only when it fits, and an export never carries the images. Run on the CPU, through the same code as on CUDA."""
import random

import pytest
import torch

from paddy.data import dataloaders, read_train, valid_ids
from paddy.data import device as D
from paddy.spec import Experiment


def exp(**kw) -> Experiment:
    return Experiment(name='dev', arch='test_convnext', item_size=(48, 40), aug_size=(32, 32), bs=4, pretrained=False,
                      **kw)


def epoch(dls, seed: int = 0) -> list:
    "One training epoch's batches, as floats after the batch augmentation, for a fixed sampler and augmentation seed."
    dls.train.rng = random.Random(7 + seed)
    random.seed(seed)
    torch.manual_seed(seed)
    return [tuple(t.clone() for t in b) for b in dls.train]


def same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for p, q in zip(a, b) for x, y in zip(p, q))


@pytest.mark.parametrize('resize', ['squish', 'crop', 'pad'])
def test_the_device_path_gives_the_host_paths_batches(comp, resize):
    df = read_train(comp)
    valid = valid_ids(df.image_id, 42, 0.2)
    host = dataloaders(df, exp(resize=resize), valid, 4, resident=False)
    held = dataloaders(df, exp(resize=resize), valid, 4, resident=True)
    assert type(host.train) is D.AsyncDL and type(held.train) is D.ResidentDL
    assert (host.item_cache_where, held.item_cache_where) == ('host', 'cpu')
    a, b = epoch(host), epoch(held)
    assert len(a) == len(held.train) == len(df) * 4 // 5 // 4 and a[0][0].shape == (4, 3, 32, 32)
    assert same(a, b)
    assert not same(a, epoch(held, seed=1))  # the comparison can tell batches apart
    assert same(epoch(held, seed=1), epoch(host, seed=1))


def test_both_targets_of_the_variety_head_come_along(comp):
    df = read_train(comp)
    df['variety'] = ['a' if i % 3 else 'b' for i in range(len(df))]
    valid = valid_ids(df.image_id, 42, 0.2)
    host, held = (dataloaders(df, exp(variety=True), valid, 4, resident=r) for r in (False, True))
    a, b = epoch(host), epoch(held)
    assert len(a[0]) == 3 and same(a, b)
    assert set(torch.cat([x[2] for x in b]).tolist()) == {0, 1} and type(b[0][2]).__name__ == 'TensorCategory'


def test_the_host_is_kept_when_the_images_do_not_fit_or_differ(comp, monkeypatch):
    from conftest import landscape
    df = read_train(comp)
    valid = valid_ids(df.image_id, 42, 0.2)
    dls = dataloaders(df, exp(), valid, 4, resident=False)
    store = dls.item_cache
    # a CUDA card with little free memory: refused before anything is put there
    monkeypatch.setattr(torch.cuda, 'mem_get_info', lambda device=None: (10_000, 16 * 2**30))
    dl, where, why = D.resident(dls.train, store, 'cuda')
    assert dl is dls.train and where == 'host'
    assert why == "0.2 MB of training images is over 25% of the GPU's 0.0 MB free", why
    monkeypatch.setattr(torch.cuda, 'mem_get_info', lambda device=None: (10**12, 10**12))
    assert D.resident(dls.train, store, 'cpu')[1] == 'cpu'
    landscape(comp)  # crop keeps each photo's own cover size: two shapes cannot share one tensor
    df = read_train(comp)
    crop = dataloaders(df, exp(resize='crop'), valid, 4, resident=True)
    assert crop.item_cache_where == 'host' and 'differ in shape' in crop.item_cache_why
    assert type(crop.train) is D.AsyncDL


def test_without_the_item_cache_there_is_nothing_to_hold(comp):
    df = read_train(comp)
    dls = dataloaders(df, exp(), valid_ids(df.image_id, 42, 0.2), 4, cache=False, resident=True)
    assert dls.item_cache_where is None and type(dls.train) is D.AsyncDL


def test_an_export_carries_no_images(comp, tmp_path):
    from fastai.learner import load_learner
    from paddy.train.learner import learner
    from paddy.train.weights import Weights
    df = read_train(comp)
    held = dataloaders(df, exp(), valid_ids(df.image_id, 42, 0.2), 4, resident=True)
    learn = learner(held, exp(), Weights(False))
    learn.export(tmp_path / 'm.pkl')
    back = load_learner(tmp_path / 'm.pkl')
    assert type(back.dls.train) is D.AsyncDL and not hasattr(back.dls.train, 'pixels')
    assert (tmp_path / 'm.pkl').stat().st_size < 5 * held.train.pixels.nbytes + 2_000_000
    preds, _ = back.get_preds(dl=back.dls.test_dl(df.path[:5].tolist()))
    assert preds.shape == (5, 3)
