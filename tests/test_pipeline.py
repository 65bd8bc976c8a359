"""Train → export → predict → ensemble on a tiny folder the project has never seen (other labels, empty variety/age)."""
import json, re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from paddy.ensemble import ensemble
from paddy.errors import PaddyError
from paddy.predict import load_preds, predict, save_preds
from paddy.spec import load
from paddy.train import Settings, train
from paddy.workspace import Workspace


@pytest.fixture(scope='module')
def trained_dir(tmp_path_factory):
    "Two tiny runs of different archs, trained once for the module."
    from conftest import TINY, make_comp
    d = tmp_path_factory.mktemp('trained')
    comp = make_comp(d / 'comp')
    (d / 'tiny.py').write_text(TINY)
    a = train(load(str(d / 'tiny.py')), Settings(data=comp), Workspace(d))  # a project under tmp, no chdir
    b = train(load(str(d / 'tiny.py'), ['arch=test_efficientnet', 'epochs=2']), Settings(data=comp), Workspace(d))
    return d, comp, a, b


@pytest.fixture
def trained(trained_dir, monkeypatch, tmp_path):
    "The module's runs, copied into this test's own folder so that no test sees another's files."
    import shutil
    d, comp, a, b = trained_dir
    for sub in ('models', 'preds'): shutil.copytree(d / sub, tmp_path / sub)
    return comp, a, b


def test_train_exports_model_metadata_and_predictions(trained):
    comp, a, b = trained
    assert a['run'] != b['run'] and a['run'].startswith('tiny-')
    for m in (a, b):
        assert Path(f"models/{m['run']}.pkl").exists() and Path(f"preds/{m['run']}.npz").exists()
        meta = json.loads(Path(f"models/{m['run']}.json").read_text())
        assert meta['vocab'] == ['cat', 'dog', 'fish']
        assert meta['experiment']['arch'] in ('test_convnext', 'test_efficientnet')
        assert meta['experiment']['epochs'] in (1, 2)
        assert meta['split_seed'] == 42 and len(meta['valid_ids']) == meta['n_valid'] == 7
        assert 0 <= meta['error_rate'] <= 1 and 0 <= meta['tta_error_rate'] <= 1
        assert meta['fit_time'] > 0 and meta['peak_gpu_mem_gb'] == 0 and meta['mixed_precision'] is False
        assert meta['versions']['fastai'] and meta['versions']['timm'] and 'git_commit' in meta
    assert a['valid_ids'] == b['valid_ids']  # one split for every experiment with the same seed
    # one history row an epoch, as the epoch table printed it
    assert [h['epoch'] for h in b['history']] == [0, 1] and not any(h['frozen'] for h in b['history'])
    last = b['history'][-1]
    assert last['error_rate'] == pytest.approx(b['error_rate']) and last['lr'] > 0 and last['seconds'] > 0
    assert last['train_loss'] > 0 and last['valid_loss'] > 0


def test_a_run_only_screened_predicts_the_test_set_when_an_ensemble_takes_it_and_once(trained, tiny_spec, capsys):
    comp, a, _ = trained
    assert a['test_preds'] is True and {'start', 'prepare', 'validate', 'export', 'tta_valid', 'tta_test'} <= set(
        a['seconds']) and all(v >= 0 for v in a['seconds'].values())
    s = train(load(str(tiny_spec)), Settings(data=comp, test_preds=False))
    npz, meta_file = Path(f"preds/{s['run']}.npz"), Path(f"models/{s['run']}.json")
    assert s['test_preds'] is False and 'tta_test' not in s['seconds'] and 'tta_valid' in s['seconds']
    p = load_preds(npz)
    assert 'test_probs' not in p and 'test_ids' not in p and len(p['valid_probs']) == 7
    ensemble([a['run'], s['run']], name='lazy', data=comp)
    assert capsys.readouterr().out.count('making its test predictions now') == 1
    p, first = load_preds(npz), load_preds(Path(f"preds/{a['run']}.npz"))
    assert p['test_ids'].tolist() == first['test_ids'].tolist() and p['test_probs'].shape == first['test_probs'].shape
    assert json.loads(meta_file.read_text())['test_preds']['made'] == 'by an ensemble'
    stamp = npz.stat().st_mtime_ns
    ensemble([a['run'], s['run']], name='lazy2', data=comp)
    assert 'making its test predictions' not in capsys.readouterr().out and npz.stat().st_mtime_ns == stamp


def test_predictions_carry_ids_vocab_and_order(trained):
    comp, a, _ = trained
    p = load_preds(Path(f"preds/{a['run']}.npz"))
    sample = pd.read_csv(comp / 'sample_submission.csv')
    assert p['test_ids'].tolist() == sample.image_id.tolist()
    assert p['vocab'].tolist() == ['cat', 'dog', 'fish']
    assert p['test_probs'].shape == (len(sample), 3)
    np.testing.assert_allclose(p['test_probs'].sum(1), 1, rtol=1e-4)
    assert p['valid_ids'].tolist() == a['valid_ids']
    truth = [re.match('[a-z]+', i)[0] for i in p['valid_ids']]
    assert [p['vocab'][t] for t in p['valid_targets']] == truth
    assert float((p['valid_probs'].argmax(1) != p['valid_targets']).mean()) == pytest.approx(a['tta_error_rate'])


def test_predict_from_the_exported_model_matches_training(trained, recwarn):
    comp, a, _ = trained
    out = predict(a['run'], out=Path('preds/again.npz'))
    assert not [w for w in recwarn if 'insecure pickle' in str(w.message)]  # a run of ours: no 4-line warning
    p, q = load_preds(out), load_preds(Path(f"preds/{a['run']}.npz"))
    assert p['test_ids'].tolist() == q['test_ids'].tolist() and p['valid_ids'].tolist() == q['valid_ids'].tolist()
    assert p['test_probs'].shape == q['test_probs'].shape
    # TTA draws fresh augmentations, so only the plain-pass quarter must agree closely; the argmax mostly does
    assert (p['test_probs'].argmax(1) == q['test_probs'].argmax(1)).mean() >= 0.5


def test_predict_never_overwrites(trained):
    "The documented `paddy predict RUN` works after training: a second prediction lands beside the first."
    _, a, b = trained
    before = Path(f"preds/{a['run']}.npz").read_bytes()
    again = predict(a['run'])
    assert again.parent == Path('preds/predicted') and again.name.startswith(a['run'] + '-')
    assert Path(f"preds/{a['run']}.npz").read_bytes() == before
    assert load_preds(again)['test_probs'].shape == load_preds(Path(f"preds/{a['run']}.npz"))['test_probs'].shape
    with pytest.raises(PaddyError, match='never overwritten: pass --out'): predict(a['run'], out=again)
    # a default ensemble takes preds/*.npz alone, so it never counts a run twice
    assert sorted(ensemble(name='not-twice', data=a['data'])['runs']) == sorted([a['run'], b['run']])


def test_ensemble_writes_sample_submission_ids_in_order(trained):
    comp, a, b = trained
    meta = ensemble(name='both', data=comp)
    sub, sample = pd.read_csv('submissions/both.csv'), pd.read_csv(comp / 'sample_submission.csv')
    assert list(sub.columns) == ['image_id', 'label']
    assert sub.image_id.tolist() == sample.image_id.tolist()  # sample_submission is shuffled: order must follow it
    assert set(sub.label) <= {'cat', 'dog', 'fish'}
    pa, pb = (load_preds(Path(f"preds/{m['run']}.npz")) for m in (a, b))
    mean = (pa['test_probs'] + pb['test_probs']) / 2
    assert sub.label.tolist() == pa['vocab'][mean.argmax(1)].tolist()
    prov = json.loads(Path('submissions/both.json').read_text())
    assert sorted(prov['runs']) == sorted([a['run'], b['run']])
    assert prov['weights'] == [0.5, 0.5]
    assert prov['method'] == 'mean'
    assert prov['valid_error']['ensemble'] is not None and meta['sha256'] == prov['sha256']


def test_ensemble_weights_and_vote(trained):
    comp, a, b = trained
    ensemble([a['run'], b['run']], weights=[1, 0], name='only_a', data=comp)
    pa = load_preds(Path(f"preds/{a['run']}.npz"))
    assert pd.read_csv('submissions/only_a.csv').label.tolist() == pa['vocab'][pa['test_probs'].argmax(1)].tolist()
    assert ensemble(['tiny-*'], vote=True, name='vote', data=comp)['method'] == 'vote'


def test_ensemble_never_overwrites(trained):
    comp, *_ = trained
    ensemble(name='x', data=comp)
    before = Path('submissions/x.csv').read_bytes()
    with pytest.raises(PaddyError, match='never overwritten: pass --name'): ensemble(name='x', data=comp)
    assert Path('submissions/x.csv').read_bytes() == before
    Path('submissions/y.json').write_text('{}')  # provenance left from elsewhere is protected too
    with pytest.raises(PaddyError, match='never overwritten'): ensemble(name='y', data=comp)
    assert not Path('submissions/y.csv').exists() and Path('submissions/y.json').read_text() == '{}'


def test_ensembles_started_in_the_same_second_both_write(trained, monkeypatch):
    import paddy.ensemble as E
    comp, *_ = trained
    monkeypatch.setattr(E.time, 'strftime', lambda fmt, *a: fmt.replace('%Y%m%d-%H%M%S', '20261130-120000'))
    first, second = ensemble(data=comp), ensemble(data=comp)
    assert (first['name'], second['name']) == ('ensemble-20261130-120000', 'ensemble-20261130-120000-2')
    assert Path(second['csv']).read_bytes() == Path(first['csv']).read_bytes()


def test_ensemble_refuses_different_vocabularies(trained):
    comp, a, _ = trained
    p = load_preds(Path(f"preds/{a['run']}.npz"))
    save_preds(Path('preds/other.npz'), 'other',
               {**{k: v for k, v in p.items() if k != 'run'}, 'vocab': np.array(['a', 'b', 'c'])})
    with pytest.raises(PaddyError, match='different vocabularies'): ensemble(data=comp)


def test_ensemble_of_nothing_is_an_error(comp):
    with pytest.raises(PaddyError, match='no predictions in preds'): ensemble(data=comp)
    with pytest.raises(PaddyError, match="no predictions match 'nope'"): ensemble(['nope'], data=comp)


def test_fresh_split_is_recorded(comp, tiny_spec):
    m = train(load(str(tiny_spec), ['seed=None']), Settings(data=comp))
    assert m['experiment']['seed'] is None and isinstance(m['split_seed'], int)
    from paddy.data import valid_ids, read_train
    assert valid_ids(read_train(comp).image_id, m['split_seed']) == m['valid_ids']  # the split can be rebuilt


def test_ensemble_scores_only_a_shared_split(trained, tiny_spec, capsys):
    comp, a, b = trained
    ensemble(name='shared', data=comp)
    out = capsys.readouterr().out
    assert f"{a['run']}" in out and 'ensemble of 2 (mean), validation error' in out
    train(load(str(tiny_spec), ['seed=None']), Settings(data=comp))
    meta = ensemble(name='mixed', data=comp)
    assert meta['valid_error']['ensemble'] is None and len(meta['runs']) == 3
    assert re.search(r'do not share one validation split \(2 splits among tiny-\w+, ', capsys.readouterr().out)


def test_a_pickle_from_outside_models_needs_trust(trained, capsys):
    import hashlib, shutil
    from typer.testing import CliRunner
    from paddy.cli import app
    comp, a, _ = trained
    Path('elsewhere').mkdir()
    shutil.copy(f"models/{a['run']}.pkl", 'elsewhere/model.pkl')
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in Path('.').rglob('*') if p.is_file()}
    runner = CliRunner()
    for bad, needle in (('elsewhere/model.pkl', 'not a run in models/ with its .json, and loading a pickle runs any '
                                                'code in it: pass --trust'),
                        ('models/../elsewhere/model.pkl', 'pass --trust'),  # a way out of models/
                        ('../../etc/passwd', 'pass --trust'), ('..', "'..' is not a run name")):
        r = runner.invoke(app, ['predict', bad, '--data', str(comp)])
        assert (r.exit_code == 2 and r.output.count('\n') == 1 and needle in r.output
                and 'Traceback' not in r.output), (bad, r.output)
    Path(f"models/{a['run']}.json").rename('elsewhere/meta.json')  # a model whose run never finished
    r = runner.invoke(app, ['predict', a['run'], '--data', str(comp)])
    assert r.exit_code == 2 and 'has no' in r.output and 'did not finish or was not made here: pass --trust' in r.output
    Path('elsewhere/meta.json').rename(f"models/{a['run']}.json")
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in Path('.').rglob('*') if p.is_file()} == before
    r = runner.invoke(app, ['predict', 'elsewhere/model.pkl', '--data', str(comp), '--trust'])
    assert r.exit_code == 0, r.output
    ids = pd.read_csv(comp / 'sample_submission.csv').image_id.tolist()
    # an outside model's test-only predictions stay out of preds/*.npz, which default ensembles take
    (got,) = Path('preds/predicted').glob('model-*.npz')
    assert load_preds(got)['test_ids'].tolist() == ids and not Path('preds/model.npz').exists()
    r = runner.invoke(app, ['predict', f"models/{a['run']}.pkl", '--data', str(comp), '--out', 'preds/bypath.npz'])
    assert r.exit_code == 0, r.output  # a path to one of ours is that run


def test_ensemble_of_no_runs_named_takes_the_data_folder_in_use(trained, tmp_path, capsys):
    from conftest import make_comp
    comp, a, b = trained
    other = make_comp(tmp_path / 'other')  # the same competition, another copy of it
    p = load_preds(Path(f"preds/{a['run']}.npz"))
    save_preds(Path('preds/elsewhere.npz'), 'elsewhere',
               {**{k: v for k, v in p.items() if k != 'run'}, 'data': np.array(str(other.resolve()))})
    meta = ensemble(name='here', data=comp)
    assert sorted(meta['runs']) == sorted([a['run'], b['run']])
    assert f'taking the 2 runs predicted on {comp} (1 others in preds/ were not)' in capsys.readouterr().out
    assert ensemble(name='there', data=other)['runs'] == ['elsewhere']
    with pytest.raises(PaddyError, match=r'predicted on 2 data folders \(.*\): pass --data DIR'):
        ensemble(name='nowhere')
    assert not Path('submissions/nowhere.csv').exists()


def test_greedy_selection_is_never_worse_than_the_mean_on_real_runs(trained, tiny_spec, capsys):
    comp, a, b = trained
    mean = ensemble(name='mean', data=comp)['valid_error']['ensemble']
    meta = ensemble(name='greedy', data=comp, select='greedy')
    out = capsys.readouterr().out
    assert meta['valid_error']['ensemble'] <= mean
    assert 'step 1: + ' in out and 'validation error' in out
    sel = meta['selection']
    assert sel['method'] == 'greedy'
    assert set(sel['weights']) == {a['run'], b['run']}
    assert all(isinstance(v, int) for v in sel['weights'].values())
    # the members are the runs it chose, by name and weight, and the method says greedy
    chosen = {r: v for r, v in sel['weights'].items() if v > 0}
    assert meta['runs'] == list(chosen) and meta['method'] == 'greedy'
    assert meta['weights'] == pytest.approx([v / sum(chosen.values()) for v in chosen.values()])
    p = load_preds(Path(f"preds/{a['run']}.npz"))
    save_preds(Path('preds/apart.npz'), 'apart',
               {**{k: v for k, v in p.items() if k != 'run'}, 'valid_ids': p['valid_ids'][::-1]})
    with pytest.raises(PaddyError, match="needs runs that share one validation split, and apart does not share"):
        ensemble(name='g2', data=comp, select='greedy')
    with pytest.raises(PaddyError, match='drop --weights and --vote'):
        ensemble(name='g3', data=comp, select='greedy', vote=True)


def test_one_training_seed_gives_the_same_weights_and_predictions_and_repeats_differ(comp, tiny_spec, monkeypatch):
    import torch
    from fastai.learner import load_learner
    from paddy.train.trainer import training_seed
    monkeypatch.setattr(torch.backends.cudnn, 'deterministic', False)  # put back after the test
    monkeypatch.setattr(torch.backends.cudnn, 'benchmark', True)
    runs = [train(load(str(tiny_spec), ['train_seed=7'] + (['deterministic=True'] if k else [])), Settings(data=comp))
            for k in range(2)]
    assert [m['train_seed'] for m in runs] == [7, 7]
    # deterministic = True asks cuDNN for its deterministic kernels (what a GPU needs to repeat; a CPU repeats anyway)
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert [m['experiment']['deterministic'] for m in runs] == [False, True]
    a, b = (load_learner(Path(f"models/{m['run']}.pkl")).model.state_dict() for m in runs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pa, pb = (load_preds(Path(f"preds/{m['run']}.npz")) for m in runs)
    assert np.array_equal(pa['valid_probs'], pb['valid_probs']) and np.array_equal(pa['test_probs'], pb['test_probs'])
    other = train(load(str(tiny_spec)), Settings(data=comp))  # the split's seed: 42
    c = load_learner(Path(f"models/{other['run']}.pkl")).model.state_dict()
    assert other['train_seed'] == 42 and not all(torch.equal(a[k], c[k]) for k in a)
    exp = load(str(tiny_spec))
    assert [training_seed(exp, 42, f'sw/tiny-{k}') for k in (1, 2, 3)] == [42, 43, 44]  # a sweep's repeats


def test_a_model_carried_away_predicts_with_trust_alone(trained, tmp_path, monkeypatch):
    "A .pkl with no .json beside it, in a folder with no data: the data folder it was trained on is found, or named."
    import shutil
    from typer.testing import CliRunner
    from paddy.cli import app
    comp, a, _ = trained
    away = tmp_path / 'away'
    away.mkdir()
    shutil.copy(f"models/{a['run']}.pkl", away / 'model.pkl')
    monkeypatch.chdir(away)
    r = CliRunner().invoke(app, ['predict', 'model.pkl', '--trust'])
    assert r.exit_code == 0, r.output
    (got,) = Path('preds/predicted').glob('model-*.npz')
    assert load_preds(got)['test_ids'].tolist() == pd.read_csv(comp / 'sample_submission.csv').image_id.tolist()
    shutil.move(comp, tmp_path / 'moved')  # the data it was trained on is gone too: one line that names --data
    r = CliRunner().invoke(app, ['predict', 'model.pkl', '--trust', '--out', 'again.npz'])
    assert r.exit_code == 2 and '--data' in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_curves_draw_finished_and_stopped_runs_into_one_png(trained):
    from PIL import Image
    from typer.testing import CliRunner
    from paddy.cli import app
    comp, a, b = trained
    runner = CliRunner()
    # a stopped run keeps its rows in its saved state
    stopped = Path('models/tiny-000000.state')
    stopped.mkdir()
    (stopped / 'run.json').write_text(json.dumps(dict(run='tiny-000000', experiment=dict(name='tiny'))))
    (stopped / 'history.json').write_text(json.dumps(dict(epochs=a['history'][:1])))
    r = runner.invoke(app, ['curves', '--out', 'c.png'])
    assert r.exit_code == 0 and 'wrote c.png' in r.output, r.output
    with Image.open('c.png') as im:
        im.verify()
        assert im.format == 'PNG' and im.size[0] > 500
    assert runner.invoke(app, ['curves', a['run'], '--out', 'c.png']).exit_code == 2  # never overwritten
    for bad, needle in (('nope-123456', 'no run nope-123456'), ('../x', 'is not a run name')):
        r = runner.invoke(app, ['curves', bad])
        assert r.exit_code == 2 and needle in r.output and len(r.output.strip().splitlines()) == 1, r.output
    meta = json.loads(Path(f"models/{b['run']}.json").read_text())
    Path(f"models/{b['run']}.json").write_text(json.dumps({**meta, 'history': []}))
    r = runner.invoke(app, ['curves', b['run']])
    assert r.exit_code == 2 and 'kept no epoch history' in r.output
    assert [h['epoch'] for h in a['history']] == [0] and [h['epoch'] for h in b['history']] == [0, 1]
