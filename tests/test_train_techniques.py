"""The techniques: MixUp/CutMix mix both heads' targets alike and never touch validation or TTA, label smoothing is
applied once, the EMA is what is exported and resumes, progressive sizes follow `aug_sizes`, held stages keep their
pretrained weights through both phases and a resume, and the interpretation counts the validation set. One run trains
them all: from a weights file (a frozen epoch, then the whole model), with the variety head, stopped after its first
epoch and resumed."""
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from paddy.cli import app
from paddy.predict import load_preds
from paddy.spec import load
from paddy.train import Settings, train
from paddy.train.ema import EMA
from paddy.train.heads import TwoHeads
from paddy.train.mixing import Mix
from paddy.workspace import Workspace

SIZES = [(32, 32), (64, 48)]


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """Every technique on, stopped after the frozen epoch and resumed; what the EMA held when exported and the raw
    model beside it, and the checkpoint's EMA steps at the stop."""
    from conftest import TINY, make_comp, weights_file, with_variety
    from test_train_resume import stop_after_the_row
    import paddy.train.trainer as R
    d = tmp_path_factory.mktemp('techniques')
    comp = with_variety(make_comp(d / 'comp', size=(64, 48)))
    spec = d / 'tiny.py'
    spec.write_text(TINY.replace('pretrained = False', f"pretrained = '{weights_file(d / 'w.pth')}'")
                    .replace('item_size = 32', 'item_size = (64, 48)')
                    + f"epochs = 2\nvariety = True\nmixup = 0.8\ncutmix = 1.0\nmix_off_epochs = 1\n"
                    f"label_smoothing = 0.1\nema = 0.99\naug_sizes = {SIZES}\nfreeze_stride = 8\n")
    ws, seen = Workspace(d), {}
    models = ws.models
    with pytest.MonkeyPatch.context() as mp:
        real = R.learner
        mp.setattr(R, 'learner', lambda *a, **k: real(*a, **k).add_cb(stop_after_the_row(0)))
        with pytest.raises(KeyboardInterrupt): train(load(str(spec)), Settings(data=str(comp)), ws)
    state = next(models.glob('*.state'))
    stopped = torch.load(state / 'model.pth', weights_only=True)['cbs']
    copy_to = EMA.copy_to

    def watched(self, model):
        seen['raw'] = {k: v.clone() for k, v in model.state_dict().items()}
        copy_to(self, model)
        seen['ema'] = {k: v.clone() for k, v in self.average.module.state_dict().items()}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(EMA, 'copy_to', watched)
        meta = train(settings=Settings(), ws=ws, resume_run=state.name.removesuffix('.state'))
    return d, comp, meta, stopped, seen


def learner_of(d: Path, meta: dict):
    from fastai.learner import load_learner
    return load_learner(d / 'models' / f"{meta['run']}.pkl")


def test_the_exported_weights_are_the_emas_and_the_raw_error_is_recorded(run):
    d, _, meta, _, seen = run
    exported = learner_of(d, meta).model.state_dict()
    assert exported.keys() == seen['ema'].keys()
    for k, v in seen['ema'].items(): assert torch.equal(exported[k], v), k
    differs = [k for k, v in seen['raw'].items() if v.is_floating_point() and not torch.equal(v, seen['ema'][k])]
    assert differs  # the average is not the last step's weights
    bn = [k for k in seen['ema'] if k.endswith(('running_mean', 'running_var'))]  # the head's BatchNorm
    assert bn and any(not torch.equal(seen['ema'][k], seen['raw'][k]) for k in bn)  # its statistics are averaged too
    assert 0 <= meta['ema']['raw_error_rate'] <= 1 and meta['ema']['decay'] == 0.99
    saved = json.loads((d / 'models' / f"{meta['run']}.json").read_text())
    assert saved['ema'] == meta['ema'] and saved['error_rate'] == meta['error_rate']


def test_resume_brings_the_ema_back(run):
    _, _, meta, stopped, _ = run
    per_epoch = meta['n_train'] // 8  # bs 8, fastai drops the last partial batch
    assert stopped['ema']['steps'] == per_epoch  # the frozen epoch's steps, saved with its checkpoint
    assert meta['resumed_from_epoch'] == 1
    # counted on from the saved state: a fresh EMA would have counted only the two epochs after the resume
    assert meta['ema']['steps'] == 3 * per_epoch
    # fine_tune's frozen epoch, then the whole model's: the resumed run's history holds the epoch it went on after
    assert [(h['epoch'], h['frozen']) for h in meta['history']] == [(0, True), (1, False), (2, False)]
    assert 0 < meta['ema']['decay_reached'] < 0.99  # still warming up over so few steps


def test_held_stages_keep_their_pretrained_weights_and_the_rest_trains(run):
    d, _, meta, _, _ = run
    start = torch.load(d / 'w.pth', weights_only=True)  # test_convnext's stages have strides 4, 8, 16 and 32
    body = {k.removeprefix('0.model.'): v for k, v in learner_of(d, meta).model.state_dict().items()
            if k.startswith('0.model.')}
    params = [k for k in start if not k.endswith(('running_mean', 'running_var', 'num_batches_tracked'))]
    held = [k for k in params if k.startswith(('stem.', 'stages.0.', 'stages.1.'))]
    assert held and all(torch.equal(body[k], start[k]) for k in held)  # through the frozen epoch, the resume, the EMA
    late = [k for k in params if k.startswith('stages.3.') and 'weight' in k]
    assert late and all(not torch.equal(body[k], start[k]) for k in late)  # the last stage trained
    assert meta['experiment']['freeze_stride'] == 8


def test_held_stages_refuse_what_holds_nothing_or_everything(tiny_spec):
    from paddy.errors import PaddyError
    from paddy.spec import validate
    from paddy.train.held import callbacks, check
    # test_convnext, random init
    random = load(str(tiny_spec), ['freeze_stride=8'])
    for refuse in (check, lambda e: callbacks(e, False)):
        with pytest.raises(PaddyError, match='starts from random weights here: set freeze_stride = 0'): refuse(random)
    for stride, what in [(2, 'none'), (32, 'all'), (64, 'all')]:
        with pytest.raises(PaddyError, match=f'holds {what} of the arch.s stages .their strides: 4, 8, 16, 32.'):
            check(load(str(tiny_spec), [f'freeze_stride={stride}', 'pretrained=True']))
    with pytest.raises(PaddyError, match='needs a timm arch'):
        check(load(str(tiny_spec), ['arch=alexnet', 'freeze_stride=8', 'pretrained=True']))
    with pytest.raises(PaddyError, match='must be a stride'): validate(load(str(tiny_spec), ['freeze_stride=-8']))


def test_each_epochs_batch_shape_follows_aug_sizes_and_tta_uses_the_last(run):
    d, comp, meta, stopped, _ = run
    # the frozen epoch and the first whole-model epoch at the first size, the last epoch at the last
    assert meta['batch_shapes'] == [[32, 32], [32, 32], [64, 48]]
    assert stopped['progressive']['shapes'] == {0: [32, 32]}
    learn = learner_of(d, meta)
    files = sorted(str(f) for f in (comp / 'test_images').iterdir())
    assert tuple(learn.dls.test_dl(files).one_batch()[0].shape[-2:]) == SIZES[-1]


def test_mixing_changes_no_validation_or_tta_output(run):
    from fastai.torch_core import set_seed
    d, comp, meta, _, _ = run
    learn = learner_of(d, meta)
    files = sorted(str(f) for f in (comp / 'test_images').iterdir())

    def outputs():
        set_seed(0)
        dl = learn.dls.test_dl(files)
        plain, _ = learn.get_preds(dl=dl)
        set_seed(1)
        tta, _ = learn.tta(dl=dl, n=2)
        return plain, tta
    before = outputs()
    with learn.added_cbs(Mix(mixup=0.8, cutmix=1.0)):
        after = outputs()
    for a, b in zip(before, after): assert torch.equal(a, b)
    p = load_preds(d / 'preds' / f"{meta['run']}.npz")
    assert p['test_probs'].shape == (6, 3) and p['valid_probs'].shape[1] == 3


def stub(x, *ys, epoch=0):
    "What a `Mix` reads of its Learner before a batch."
    return SimpleNamespace(xb=(x,), yb=ys, x=x, y=ys[0], epoch=epoch, training=True)


@pytest.mark.parametrize('kind', ['mixup', 'cutmix'])
def test_mixing_permutes_both_heads_targets_alike(kind):
    torch.manual_seed(0)
    disease, x = torch.arange(16) % 5, torch.rand(16, 3, 8, 8)
    variety = disease + 100  # a row's variety tells which row it came from
    cb = Mix(**{kind: 1.0})
    cb.learn = stub(x, disease, variety)
    cb.before_batch()
    d1, v1 = cb.yb1
    assert torch.equal(v1 - 100, d1) and not torch.equal(d1, disease)  # one permutation for both, not the identity
    assert 0 < cb.lam < 1 and cb.learn.xb[0].shape == x.shape and not torch.equal(cb.learn.xb[0], x)
    assert torch.equal(x, cb.learn.x)  # the batch itself is left as it was: the mixed one is a new tensor
    # the loss is λ·loss(y) + (1-λ)·loss(y[perm]) for both heads together
    loss_fn, out = TwoHeads(5, 0.0), torch.randn(16, 5 + 105)
    cb.old_lf = loss_fn
    mixed = cb.lf(out, disease, variety)
    per = lambda d, v: F.cross_entropy(out[:, :5], d, reduction='none') + F.cross_entropy(out[:, 5:], v,
                                                                                           reduction='none')
    assert torch.allclose(mixed, (cb.lam * per(disease, variety) + (1 - cb.lam) * per(d1, v1)).mean())
    assert loss_fn.reduction == 'mean'  # put back after mixing


def test_the_last_epochs_are_not_mixed():
    cb = Mix(mixup=0.8, off_from=3)
    x, y = torch.rand(4, 3, 8, 8), torch.arange(4)
    for epoch, mixed in ((2, True), (3, False), (4, False)):
        cb.learn = stub(x, y, epoch=epoch)
        cb.before_batch()
        assert (cb.lam is not None) == mixed and torch.equal(cb.learn.xb[0], x) != mixed


def closed_form(out: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    "Smoothed cross-entropy per row: (1-ε)·CE plus ε times the mean of -log p over the classes."
    logp = out.log_softmax(1)
    return (1 - eps) * -logp.gather(1, y[:, None])[:, 0] + eps * -logp.mean(1)


def test_label_smoothing_is_its_closed_form_once_also_when_mixed():
    from fastai.losses import CrossEntropyLossFlat
    from paddy.train.smoothing import loss
    torch.manual_seed(0)
    out, y, eps = torch.randn(8, 4) * 3, torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]), 0.2
    lf = loss(None, SimpleNamespace(variety=False, label_smoothing=eps))['loss_func']
    assert isinstance(lf, CrossEntropyLossFlat)
    assert torch.allclose(lf(out, y), closed_form(out, y, eps).mean())
    assert not torch.allclose(lf(out, y), closed_form(out, y, 1 - (1 - eps) ** 2).mean())  # not smoothed twice
    two = TwoHeads(4, eps)
    v = (y + 1) % 4
    assert torch.allclose(two(torch.cat([out, out.flip(0)], 1), y, v),
                          closed_form(out, y, eps).mean() + closed_form(out.flip(0), v, eps).mean())
    # mixed: the smoothed loss of each target, weighted; smoothing the mixed targets once gives the same
    cb = Mix(mixup=1.0)
    cb.learn = stub(torch.rand(8, 3, 4, 4), y)
    cb.before_batch()
    cb.old_lf = lf
    soft = lambda t: F.one_hot(t, 4) * (1 - eps) + eps / 4
    target = cb.lam * soft(y) + (1 - cb.lam) * soft(cb.yb1[0])
    assert torch.allclose(cb.lf(out, y), -(target * out.log_softmax(1)).sum(1).mean())


def test_no_technique_adds_anything_by_default(tiny_spec):
    from paddy.train.learner import learner
    from paddy.train.techniques import callbacks
    exp = load(str(tiny_spec))
    assert callbacks(exp, True) == [] and callbacks(exp, False) == []
    from paddy.train.smoothing import loss
    assert loss(None, exp) == {}  # fastai's own default loss, as before
    assert learner.__module__ == 'paddy.train.learner'


def test_interpretation_counts_the_validation_set_and_its_pngs_open(run, tmp_path):
    from paddy.ensemble import ensemble
    from paddy.interpret import interpret
    d, comp, meta, _, _ = run
    out = interpret(meta['run'], ws=Workspace(d), out=tmp_path / 'one', top=4)
    cm = np.array(out['confusion'])
    assert cm.sum() == meta['n_valid'] == len(meta['valid_ids'])
    assert out['error_rate'] == pytest.approx(meta['tta_error_rate'])
    table = pd.read_csv(tmp_path / 'one' / 'classes.csv')
    assert table.images[:-1].sum() == meta['n_valid'] and list(table.label[:-1]) == ['cat', 'dog', 'fish']
    for png in ('confusion.png', 'top_losses.png'):
        with Image.open(tmp_path / 'one' / png) as im: assert im.size[0] > 100 and im.format == 'PNG'
    assert len(out['top_losses']) == 4 and out['top_losses'][0]['loss'] >= out['top_losses'][-1]['loss']
    assert [list(p) for p in out['most_confused']] == [list(p) for p in meta['confused']]
    theirs = Workspace(d, submissions=tmp_path / 'subs')
    ensemble([meta['run']], name='both', data=comp, ws=theirs)
    r = CliRunner().invoke(app, ['interpret', '--ensemble', 'both', '--out', str(tmp_path / 'ens'), '--top', '2'])
    assert r.exit_code == 2 and 'no ensemble submissions/both.json' in r.output
    e = interpret(ensemble='both', ws=theirs, out=tmp_path / 'ens', top=2)
    assert e['confusion'] == out['confusion'] and e['runs'] == [meta['run']]  # one member: the run's own counts
    assert not list(tmp_path.glob('.*.tmp'))
