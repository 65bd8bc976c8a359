"""fastai's learning-rate finder: `paddy lr-find EXP` and `lr = 'find'`, on tiny models."""
import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from paddy.cli import app
from paddy.errors import PaddyError
from paddy.spec import load, validate
from paddy.train import Settings, train

runner = CliRunner()


def one_line(r, needle: str):
    errors = [l for l in r.output.splitlines() if l.startswith('paddy: error')]  # notes (the item cache's) aside
    assert r.exit_code == 2 and len(errors) == 1 and needle in errors[0] and 'Traceback' not in r.output, r.output


def test_lr_find_prints_both_suggestions_and_saves_the_plot_and_curve(comp, tiny_spec):
    r = runner.invoke(app, ['lr-find', str(tiny_spec), '--data', str(comp), '--set', 'bs=4'])
    assert r.exit_code == 0, r.output
    assert 'tiny: valley ' in r.output and ', slide ' in r.output
    (png,), (rec,) = Path('reports').glob('lr-find-tiny-*.png'), Path('reports').glob('lr-find-tiny-*.json')
    with Image.open(png) as im:
        im.verify()
        assert im.format == 'PNG'
    found = json.loads(rec.read_text())
    assert found['valley'] > 0 and found['slide'] > 0 and len(found['lrs']) == len(found['losses']) >= 5
    assert found['lrs'] == sorted(found['lrs']) and found['experiment']['name'] == 'tiny'
    assert not Path('models').exists()  # the finder's own save of the model stays out of the user's models
    one_line(runner.invoke(app, ['lr-find', str(tiny_spec), '--data', str(comp), '--set', 'bs=64']), 'lower bs')


def test_lr_find_in_a_run_trains_at_the_valley_and_a_resume_keeps_it(comp, tiny_spec, monkeypatch):
    from test_train_resume import stop_after_the_row
    from paddy.train import lr_find
    real = lr_find.find

    def then_stop(learn, name):  # a Ctrl-C after the first epoch's row, once the finder is done
        found = real(learn, name)
        learn.add_cb(stop_after_the_row(0))
        return found
    monkeypatch.setattr(lr_find, 'find', then_stop)
    with pytest.raises(KeyboardInterrupt):
        train(load(str(tiny_spec), ['lr=find', 'epochs=2', 'bs=4']), Settings(data=str(comp)))
    monkeypatch.setattr(lr_find, 'find', real)
    (state,) = Path('models').glob('*.state/run.json')
    first = json.loads(state.read_text())['lr_find']
    run = state.parent.name.removesuffix('.state')
    r = runner.invoke(app, ['train', '--resume', run, '--data', str(comp)])
    assert r.exit_code == 0 and 'learning-rate finder: valley' in r.output, r.output
    meta = json.loads(Path(f'models/{run}.json').read_text())
    assert meta['experiment']['lr'] == 'find' and meta['lr_find'] == first
    assert meta['lr_find']['used'] == meta['lr_find']['valley'] > 0
    assert [h['epoch'] for h in meta['history']] == [0, 1]
    assert meta['history'][0]['lr'] <= meta['lr_find']['used'] * 1.0001  # fit_one_cycle's peak is the rate used


def test_a_finder_that_diverges_at_once_is_one_line(comp, tiny_spec, monkeypatch):
    from test_train_resume import nan_losses
    nan_losses(monkeypatch)
    with pytest.raises(PaddyError, match=r'tiny: the learning-rate finder diverged after \d+ batches'):
        train(load(str(tiny_spec), ['lr=find', 'bs=4']), Settings(data=str(comp)))
    assert not list(Path('models').glob('*.json'))


def test_lr_must_be_a_rate_or_find(tiny_spec):
    for bad in ('lr=fast', 'lr=-1'):
        with pytest.raises(PaddyError, match=r"must be a positive number .* or .find."):
            validate(load(str(tiny_spec), [bad]))
