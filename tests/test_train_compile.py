"""`compile = True`: a run compiled through fine_tune's frozen epoch and unfreeze, with the variety head, stopped after
its first epoch and resumed, exports a plain model that predicts on a CPU. torch.compile's `aot_eager` backend traces
and partitions as inductor does, without generating code, which takes minutes on a CPU."""
import json
from pathlib import Path

import pytest

from paddy.errors import PaddyError
from paddy.predict import load_preds, predict
from paddy.spec import load
from paddy.train import Settings, train
from paddy.train.learner import check_experiment
from paddy.workspace import Workspace


@pytest.fixture(scope='module')
def compiled(tmp_path_factory):
    "A compiled run from a weights file (so fine_tune freezes, then unfreezes), stopped after epoch 0, then resumed."
    import torch
    from conftest import TINY, make_comp, weights_file, with_variety
    from test_train_resume import stop_after_the_row
    import paddy.train.trainer as R
    d = tmp_path_factory.mktemp('compiled')
    comp = with_variety(make_comp(d / 'comp'))
    spec = d / 'tiny.py'
    spec.write_text(TINY.replace('pretrained = False', f"pretrained = '{weights_file(d / 'w.pth')}'")
                    + "epochs = 2\nvariety = True\ncompile = True\ncompile_backend = 'aot_eager'\n")
    ws = Workspace(d)
    models = ws.models
    with pytest.MonkeyPatch.context() as mp:
        real = R.learner
        mp.setattr(R, 'learner', lambda *a, **k: real(*a, **k).add_cb(stop_after_the_row(0)))
        with pytest.raises(KeyboardInterrupt): train(load(str(spec)), Settings(data=str(comp)), ws)
    state = next(models.glob('*.state'))
    saved = list(torch.load(state / 'model.pth', weights_only=True)['model'])
    run = state.name.removesuffix('.state')
    meta = train(settings=Settings(), ws=ws, resume_run=run)
    return d, comp, meta, saved


def test_the_run_records_its_compile_apart_from_the_fit(compiled):
    _, _, meta, _ = compiled
    c = meta['compile']
    assert (c['mode'], c['backend']) == ('default', 'aot_eager')
    assert 0 < c['fit_seconds'] <= c['seconds']
    # one graph each for the unfrozen training and evaluation steps (and the last, smaller batch), not one a batch
    assert 1 <= c['graphs'] <= 6
    assert meta['experiment']['compile'] is True and meta['resumed'] and meta['resumed_from_epoch'] == 1
    assert 0 < meta['fit_time'] and 0 <= meta['variety_error_rate'] <= 1


def test_checkpoints_and_exports_are_of_the_plain_model(compiled):
    import torch
    from fastai.learner import load_learner
    d, _, meta, saved = compiled
    assert saved and not any('_orig_mod' in k for k in saved)
    learn = load_learner(d / 'models' / f"{meta['run']}.pkl")
    assert learn.model.__dict__.get('_compiled_call_impl') is None
    assert not any('_orig_mod' in k for k in learn.model.state_dict())
    assert isinstance(learn.model, torch.nn.Sequential)


def test_a_compiled_run_predicts_and_its_preds_are_whole(compiled, tmp_path):
    d, comp, meta, _ = compiled
    p = load_preds(d / 'preds' / f"{meta['run']}.npz")
    assert p['test_probs'].shape == (6, 3)
    again = load_preds(predict(meta['run'], ws=Workspace(d), data=comp, out=tmp_path / 'again.npz'))
    assert again['test_probs'].shape == (6, 3) and again['vocab'].tolist() == ['cat', 'dog', 'fish']
    saved = json.loads((d / 'models' / f"{meta['run']}.json").read_text())
    assert saved['compile'] == meta['compile']


@pytest.mark.parametrize('sets, says', [
    (['compile_mode=fast'], "compile_mode='fast' must be one of default, reduce-overhead"),
    (['compile=True', 'compile_backend=nope'], "compile_backend='nope' is not a torch.compile backend"),
])
def test_a_compile_setting_torch_lacks_is_refused(tiny_spec, sets, says):
    with pytest.raises(PaddyError, match=says): check_experiment(load(str(tiny_spec), sets))
    assert not Path('models').exists()
