"""Training reads nothing back to the host per batch that paddy controls, and the bar and recorder still read as
fastai's: checked on a CPU through the reads that sync on a GPU (benchmarks/host_reads.py)."""
import sys
from pathlib import Path

import pytest
import torch
from fastai.callback.core import Callback

from paddy.data import dataloaders, read_train, valid_ids
from paddy.spec import Experiment
from paddy.train import syncs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'benchmarks'))
import host_reads  # noqa: E402 (the instrumentation lives with the benchmarks, out of the package)
from paddy.train.learner import learner
from paddy.train.weights import Weights


class Reads(Callback):
    """Counts host reads from the second training batch on (the first sets up what later ones reuse) to the end of the
    training phase, before any callback's end-of-phase work."""
    order = -100
    def before_train(self): self.counting, self.batches = None, 0
    def before_batch(self):
        if not self.training: return
        self.batches += self.counting is not None
        if self.iter == 1:
            self.counting = host_reads.host_reads()
            self.sites = self.counting.__enter__()
    def after_train(self): self.counting.__exit__(None, None, None)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    from conftest import make_comp
    comp = make_comp(tmp_path_factory.mktemp('syncs') / 'comp', n=16)
    df = read_train(comp)
    exp = Experiment(name='syncs', arch='test_convnext', item_size=32, aug_size=32, bs=4, pretrained=False)
    return df, exp, valid_ids(df.image_id, 42, 0.2)


def one_epoch(data, fastai_own: bool = False):
    "One training epoch of paddy's Learner on the training images held on the device (the CPU here)."
    df, exp, valid = data
    dls = dataloaders(df, exp, valid, exp.bs, resident=True)
    learn = learner(dls, exp, Weights(False))
    if fastai_own:  # the bar and smooth loss fastai would use
        from fastai.callback.progress import ProgressCallback
        from fastai.learner import AvgSmoothLoss
        learn.remove_cbs([learn.progress, learn.host_losses])
        learn.add_cb(ProgressCallback())
        learn.recorder.smooth_loss = AvgSmoothLoss()
    reads = Reads()
    learn.fit_one_cycle(1, 1e-3, cbs=[reads])
    return learn, reads


def test_a_training_batch_reads_back_only_what_is_named(data):
    learn, reads = one_epoch(data)
    assert reads.batches >= 5
    assert host_reads.unexpected(reads.sites) == [], reads.sites
    assert not any('paddy/' in s for s in reads.sites)


def test_the_finder_sees_fastais_own_per_batch_reads(data):
    _, reads = one_epoch(data, fastai_own=True)
    found = host_reads.unexpected(reads.sites)
    assert 'fastai/callback/progress.py:after_batch:item' in found, found
    assert any(s.startswith('fastai/torch_core.py') and s.endswith(':cpu') for s in found), found
    assert reads.sites['fastai/callback/progress.py:after_batch:item'] >= reads.batches


def test_the_recorder_and_bar_read_as_with_fastai(data):
    learn, _ = one_epoch(data)
    rec = learn.recorder
    assert len(rec.losses) == len(learn.dls.train) and all(l.device.type == 'cpu' for l in rec.losses)
    bar = learn.progress
    assert bar.text and float(bar.text) == pytest.approx(float(rec.losses[-2]), abs=1e-4)  # a batch behind, on a CPU
    assert rec.values[-1][0] == pytest.approx(float(rec.losses[-1]))  # the epoch row's train_loss


def test_an_export_leaves_the_bars_copies_behind(data, tmp_path):
    "On CUDA the bar holds CUDA events, which do not pickle: an export must not take them along."
    from collections import deque
    from fastai.learner import load_learner
    learn, _ = one_epoch(data)
    assert learn.progress.slots
    learn.progress.slots = deque([lambda: 'unpicklable, as a CUDA event'])
    learn.export(tmp_path / 'm.pkl')
    back = load_learner(tmp_path / 'm.pkl', cpu=True)
    assert not hasattr(back.progress, 'slots') and back.recorder.smooth_loss.val.device.type == 'cpu'


def test_the_smooth_loss_is_fastais(data):
    "The same losses give the same smooth losses, step by step, as fastai's `AvgSmoothLoss`."
    from types import SimpleNamespace
    from fastai.learner import AvgSmoothLoss
    ours, theirs = syncs.DeviceSmoothLoss(), AvgSmoothLoss()
    for m in (ours, theirs): m.reset()
    for v in torch.linspace(3, 0.5, 12):
        learn = SimpleNamespace(loss=v.expand(4))
        for m in (ours, theirs): m.accumulate(learn)
        assert float(ours.value) == pytest.approx(float(theirs.value))
