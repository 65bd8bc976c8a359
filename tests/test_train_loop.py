"""The fit loop: `accum` changes memory, not maths (the step's gradients equal one full batch's), and a stopped run
leaves no half files."""

import pytest
import torch
from fastai.callback.training import GradientAccumulation
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.callback.core import Callback, CancelFitException
from fastai.losses import CrossEntropyLossFlat
from fastai.optimizer import SGD
from torch import nn

from paddy.spec import Experiment
from paddy.train.loop import accum_setup, whole_or_nothing
from paddy.workspace import Workspace


class Grab(Callback):
    "Keep the gradients the optimizer is about to use, then stop."
    order = GradientAccumulation.order + 1  # after accumulation has let the step through
    def before_step(self):
        self.grads = [p.grad.detach().clone() for p in self.learn.model.parameters()]
        raise CancelFitException()


def step_grads(bs, cbs):
    torch.manual_seed(0)
    x, y = torch.randn(64, 3, 8, 8), torch.randint(0, 10, (64,))
    # no batch norm, so a micro-batch sees exactly what the full batch sees
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    dl = DataLoader(list(zip(x, y)), bs=bs, shuffle=False, drop_last=False)
    grab = Grab()
    learn = Learner(DataLoaders(dl, dl), model, loss_func=CrossEntropyLossFlat(), opt_func=SGD, lr=0.1, cbs=list(cbs)
                    + [grab])
    learn.fit(1)
    return grab.grads


def test_accum_two_gives_the_full_batch_gradients():
    bs, cbs = accum_setup(Experiment(name='x', arch='resnet18', accum=2))
    assert bs == 32 and len(cbs) == 1
    full = step_grads(*accum_setup(Experiment(name='x', arch='resnet18', accum=1)))
    acc = step_grads(bs, cbs)
    for a, b in zip(full, acc): torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_accum_counts_samples_not_micro_batches():
    "The trap: `GradientAccumulation(accum)` would step after every micro-batch; paddy's counts the batch's samples."
    for accum, world in ((2, 1), (4, 1), (2, 2)):
        bs, (cb,) = accum_setup(Experiment(name='x', arch='resnet18', accum=accum), world)
        assert bs == 64 // accum // world and cb.n_acc == 64 // world
    full = step_grads(64, [])
    acc4 = step_grads(*accum_setup(Experiment(name='x', arch='resnet18', accum=4)))
    for a, b in zip(full, acc4): torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_an_unfinished_run_leaves_nothing(tmp_path):
    ws = Workspace(tmp_path / 'project')  # a project of its own, wherever the test runs
    m, p = ws.models, ws.preds
    m.mkdir(parents=True); p.mkdir()
    (m / 'r.pkl').write_text('half'); (p / 'r.npz').write_text('half')
    with pytest.raises(KeyboardInterrupt), whole_or_nothing('r', ws): raise KeyboardInterrupt
    assert not (m / 'r.pkl').exists() and not (p / 'r.npz').exists()
    for f in (m / 's.pkl', p / 's.npz', m / 's.json'): f.write_text('whole')
    with pytest.raises(RuntimeError), whole_or_nothing('s', ws): raise RuntimeError
    assert all(f.exists() for f in (m / 's.pkl', p / 's.npz'))


class PeakLrs(Callback):
    "The highest rate each parameter group reached in the whole-model fit (after fine_tune's frozen epoch)."
    def before_fit(self): self.peak = None
    def after_batch(self):
        if getattr(self.learn, 'epoch0', 0) != 1: return  # the frozen epoch's schedule is the head's alone
        lrs = [h['lr'] for h in self.learn.opt.hypers]
        self.peak = lrs if self.peak is None else [max(a, b) for a, b in zip(self.peak, lrs)]


@pytest.mark.parametrize('lr_mult', [100, 4])
def test_the_body_trains_at_lr_over_lr_mult(lr_mult):
    "fine_tune's discriminative rates: the head at lr / 2, the pretrained body `lr_mult` times lower."
    import fastai.callback.schedule  # noqa: F401  (fit_one_cycle, as fastai.vision.all brings it)
    from paddy.train.loop import fit
    torch.manual_seed(0)
    x, y = torch.randn(32, 3, 8, 8), torch.randint(0, 10, (32,))
    body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model = nn.Sequential(body, nn.Linear(8, 10))
    dl = DataLoader(list(zip(x, y)), bs=8, shuffle=False, drop_last=False)
    peak = PeakLrs()
    learn = Learner(DataLoaders(dl, dl), model, loss_func=CrossEntropyLossFlat(), opt_func=SGD, cbs=[peak],
                    splitter=lambda m: [list(m[0].parameters()), list(m[1].parameters())])
    with learn.no_bar(), learn.no_logging(): fit(learn, 2, lr=0.02, pretrained=True, lr_mult=lr_mult)
    body_lr, head_lr = peak.peak
    assert 0.009 < head_lr <= 0.01  # one cycle's peak, lr / 2, sampled at 8 batches
    assert body_lr / head_lr == pytest.approx(1 / lr_mult)
