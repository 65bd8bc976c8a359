"""Cross-validation end to end on tiny models: a CV run stopped in its third fold of five and resumed, a second CV run
on the same plan, their OOF ensembles, a final fit on every image, and a CV run on a pseudo-labelled folder. Every fold
that trains is watched: what it trained on and what it held out."""
import contextlib, io, json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from paddy.cli import app
from paddy.errors import PaddyError
from paddy.predict import load_preds
from paddy.selection import _nll
from paddy.spec import load
from paddy.train import Settings
from paddy.workspace import Workspace

K = 5


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    from conftest import TINY, make_comp
    from test_train_resume import stop_after_the_row
    import paddy.train.trainer as R
    from paddy.train import cv
    d = tmp_path_factory.mktemp('cv')
    comp = make_comp(d / 'comp')
    spec = d / 'tiny.py'
    spec.write_text(TINY)
    seen, builds = [], []
    real_prepare, real_learner = R.prepare, R.learner

    def watched(*a, **k):  # what each fold trained on and held out, and whether it resumed
        r = real_prepare(*a, **k)
        trained = {Path(p).name for p in r.learn.dls.train_ds.items}
        seen.append(dict(run=r.name, resumed=r.state is not None, train=trained, valid=set(r.valid),
                         data=Path(r.settings.data).name))
        return r

    def stops_the_third(*a, **k):
        builds.append(1)
        learn = real_learner(*a, **k)
        return learn.add_cb(stop_after_the_row(0)) if len(builds) == 3 else learn

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(d)
        mp.setattr(R, 'prepare', watched)
        mp.setattr(R, 'learner', stops_the_third)
        err = io.StringIO()
        with pytest.raises(KeyboardInterrupt), contextlib.redirect_stderr(err):
            cv.cross_validate(load(str(spec)), Settings(data=str(comp)), K)
        first = list(seen)
        a = first[0]['run'].removesuffix('-f1')
        before = {f.name: f.stat().st_mtime_ns for f in Path(f'models/{a}.folds').glob('*.json')}
        mp.setattr(R, 'learner', real_learner)
        cv.start(None, (), Settings(), resume_run=a)
        resumed = seen[len(first):]
        b = cv.cross_validate(load(str(spec), ['lr=0.003']), Settings(data=str(comp)), K)['run']
        full = cv.full_fit(load(str(spec)), Settings(data=str(comp)))
        runner = CliRunner()
        for name, extra in (('mean', []), ('greedy', ['--select', 'greedy']), ('logloss', ['--select', 'logloss'])):
            r = runner.invoke(app, ['ensemble', a, b, '--name', name, *extra])
            assert r.exit_code == 0, r.output
        r = runner.invoke(app, ['pseudo', 'mean', '--dest', 'pseudo', '--threshold', '0.01'])
        assert r.exit_code == 0, r.output
        n_seen = len(seen)
        ps = cv.cross_validate(load(str(spec)), Settings(data=str(d / 'pseudo')), K)
    return SimpleProject(d, comp, a, b, full, ps, first, resumed, seen[n_seen:], err.getvalue(), before)


class SimpleProject:
    def __init__(self, d, comp, a, b, full, ps, first, resumed, pseudo_folds, stop_message, before):
        self.__dict__.update(locals())
        del self.__dict__['self']

    def meta(self, run): return json.loads((self.d / 'models' / f'{run}.json').read_text())
    def preds(self, run): return load_preds(self.d / 'preds' / f'{run}.npz')
    def fold_preds(self, cv, k): return load_preds(self.d / 'preds' / f'{cv}.folds' / f'{cv}-f{k}.npz')
    def ids(self): return set(pd.read_csv(self.comp / 'train.csv').image_id)


def test_a_cv_run_stopped_in_fold_3_of_5_resumes_with_folds_3_to_5_only(project):
    p = project
    assert [s['run'] for s in p.first] == [f'{p.a}-f{k}' for k in (1, 2, 3)]
    assert f'`paddy train --resume {p.a}` goes on from there' in p.stop_message
    assert [(s['run'], s['resumed']) for s in p.resumed] == [(f'{p.a}-f3', True), (f'{p.a}-f4', False),
                                                             (f'{p.a}-f5', False)]
    assert {s['data'] for s in p.resumed} == {'comp'}  # resumed with no --data: the CV run's recorded settings
    after = {f.name: f.stat().st_mtime_ns for f in (p.d / 'models' / f'{p.a}.folds').glob('*.json')}
    assert {k: after[k] for k in p.before} == p.before  # folds 1 and 2 untouched
    assert p.meta(p.a)['runs'] == [f'{p.a}-f{k}' for k in range(1, K + 1)]
    assert not (p.d / 'models' / f'{p.a}.folds' / f'{p.a}-f3.state').exists()


def test_every_image_gets_one_oof_prediction_from_a_model_that_never_trained_on_it(project):
    p = project
    folds = [s for s in p.first[:2] + p.resumed]
    assert len(folds) == K
    ids = p.ids()
    for s in folds:
        assert not s['train'] & s['valid'] and s['train'] | s['valid'] == ids, s['run']
    assert sorted(sum((sorted(s['valid']) for s in folds), [])) == sorted(ids)  # each image held out once
    oof = p.preds(p.a)
    assert oof['valid_ids'].tolist() == sorted(ids) and str(oof['folds']) == p.meta(p.a)['split']['plan']
    at = {i: n for n, i in enumerate(oof['valid_ids'])}
    for k in range(1, K + 1):  # each image's OOF row is the prediction of the fold that held it out
        f = p.fold_preds(p.a, k)
        assert np.array_equal(oof['valid_probs'][[at[i] for i in f['valid_ids']]], f['valid_probs'])
    tests = [p.fold_preds(p.a, k)['test_probs'] for k in range(1, K + 1)]
    assert np.allclose(oof['test_probs'], np.mean(tests, 0))


def test_the_cv_run_is_one_row_with_its_oof_error_spread_and_summed_time(project):
    p = project
    folds = [json.loads(f.read_text()) for f in sorted((p.d / 'models' / f'{p.a}.folds').glob('*-f?.json'))]
    m = p.meta(p.a)
    n = np.array([f['n_valid'] for f in folds])
    assert m['tta_error_rate'] == pytest.approx(np.dot(n, [f['tta_error_rate'] for f in folds]) / n.sum())
    assert m['fit_time'] == pytest.approx(sum(f['fit_time'] for f in folds))
    assert m['fold_std'] == pytest.approx(np.std([f['tta_error_rate'] for f in folds], ddof=1))
    from paddy.report import pivot
    from paddy.results import results
    df = results(Workspace(p.d))
    assert sorted(df.run) == sorted([p.a, p.b, p.full['run'], p.ps['run']])  # no fold run on its own
    row = df.set_index('run').loc[p.a]
    assert row.split == 'cv5' and row.error_rate == pytest.approx(m['error_rate'])
    assert row.fold_mean == pytest.approx(m['fold_mean']) and df.set_index('run').loc[p.full['run']].split == 'full'
    assert 'tiny (cv5)' in set(pivot(df.dropna(subset=['error_rate'])).experiment)


def test_oof_weighted_ensembles_are_no_worse_on_oof_than_the_mean(project):
    p = project
    subs = {n: json.loads((p.d / 'submissions' / f'{n}.json').read_text()) for n in ('mean', 'greedy', 'logloss')}
    assert subs['greedy']['valid_error']['ensemble'] <= subs['mean']['valid_error']['ensemble']
    members = [p.preds(r) for r in (p.a, p.b)]
    targets = members[0]['valid_targets']
    def nll(w): return _nll(sum(x * m['valid_probs'] for x, m in zip(w, members)), targets)
    w = [subs['logloss']['selection']['weights'][r] for r in (p.a, p.b)]
    assert sum(w) == pytest.approx(1) and nll(w) <= nll([0.5, 0.5]) + 1e-12
    assert subs['logloss']['method'] == 'logloss'


def test_a_full_fit_trains_on_every_image_and_its_cv_run_stands_for_it(project):
    p = project
    m = p.full
    assert m['n_train'] == len(p.ids()) and m['n_valid'] == 0 and m['error_rate'] is None
    assert m['split'] == dict(kind='full', stand_in=p.a, plan=p.meta(p.a)['split']['plan'])
    f, oof = p.preds(m['run']), p.preds(p.a)
    assert str(f['valid_from']) == p.a and np.array_equal(f['valid_probs'], oof['valid_probs'])
    with contextlib.chdir(p.d):
        r = CliRunner().invoke(app, ['ensemble', m['run'], p.b, '--select', 'greedy', '--name', 'with-full'])
    assert r.exit_code == 0, r.output


def test_pseudo_labels_train_every_fold_and_are_never_held_out(project):
    p = project
    added = pd.read_csv(p.d / 'pseudo' / 'train.csv', dtype=str)
    added = set(added.image_id[added.pseudo == '1'])
    assert added and added <= set(pd.read_csv(p.comp / 'sample_submission.csv').image_id)
    some = next(iter(added))
    link = next((p.d / 'pseudo' / 'train_images').glob(f'*/{some}'))
    assert link.is_symlink() and link.resolve() == (p.comp / 'test_images' / some).resolve()
    assert len(p.pseudo_folds) == K
    for s in p.pseudo_folds:
        assert not s['valid'] & added and added <= s['train'], s['run']
    assert p.ps['n_pseudo'] == len(added) and p.ps['split']['plan'] == p.meta(p.a)['split']['plan']
    assert p.preds(p.ps['run'])['valid_ids'].tolist() == p.preds(p.a)['valid_ids'].tolist()  # comparable OOF


def test_a_sweep_makes_cv_runs_and_resumes_a_stopped_one(comp, tiny_spec):
    from paddy.sweep import Sweep, stopped
    s, plain = Sweep([str(tiny_spec)], folds=3, data=comp), Sweep([str(tiny_spec)], data=comp)
    cmd = s.command('tiny-1')
    assert cmd[cmd.index('--folds') + 1] == '3' and '--folds' not in plain.command('tiny-1')
    assert s.name != plain.name  # another sweep
    full = Sweep([str(tiny_spec)], data=comp, full=True)  # the final fits of a playbook with final_full
    assert '--full' in full.command('tiny-1') and '--full' not in cmd and full.name not in (s.name, plain.name)
    with pytest.raises(PaddyError, match='not both'): Sweep([str(tiny_spec)], data=comp, folds=3, full=True)
    from types import SimpleNamespace
    from paddy.sweep.driver import outcome
    assert outcome(SimpleNamespace(error_rate=None, run='tiny-f'), dict(rc=0), 'l') == 'every image, tiny-f'  # no error
    assert outcome(SimpleNamespace(error_rate=0.25, run='tiny-v'), dict(rc=0), 'l') == 'error 0.2500, tiny-v'
    assert outcome(None, dict(rc=3), 'x.log') == 'FAILED (exit 3), see x.log'
    r = CliRunner().invoke(app, ['sweep', str(tiny_spec), '--data', str(comp), '--full', '--folds', '3'])
    assert r.exit_code == 2 and 'not both' in r.output and not Path('sweeps').exists(), r.output  # the flag reaches it
    cv = Path('models/tiny-abc123.folds')
    cv.mkdir(parents=True)
    (cv / 'cv.json').write_text(json.dumps(dict(run='tiny-abc123', settings=dict(sweep=f'{s.name}/tiny-1'))))
    assert stopped(s.name) == {'tiny-1': 'tiny-abc123'}
    Path('models/tiny-abc123.json').write_text('{}')  # finished: nothing to resume
    assert stopped(s.name) == {}



def test_a_fold_predicts_by_its_path_and_its_predictions_stay_with_its_cv_run(project):
    p = project
    with contextlib.chdir(p.d):
        r = CliRunner().invoke(app, ['predict', f'models/{p.a}.folds/{p.a}-f1.pkl'])
        assert r.exit_code == 0, r.output
        out = list(Path(f'preds/{p.a}.folds/predicted').glob(f'{p.a}-f1-*.npz'))
        assert len(out) == 1 and not list(Path('preds').glob(f'{p.a}-f1*'))
        again, first = load_preds(out[0]), p.fold_preds(p.a, 1)
        assert np.array_equal(again['valid_ids'], first['valid_ids'])  # the fold's own held-out images
        assert np.allclose(again['valid_probs'].sum(1), 1, atol=1e-4)


def test_a_cv_run_that_fails_before_any_fold_leaves_nothing(comp, tiny_spec, monkeypatch):
    import paddy.train.trainer as R
    from paddy.train import cv
    def fails(*a, **k): raise RuntimeError('out of memory')
    monkeypatch.setattr(R, 'fit_run', fails)
    with pytest.raises(RuntimeError): cv.cross_validate(load(str(tiny_spec)), Settings(data=str(comp)), 3)
    assert list(Path('folds').glob('*.csv')) and not list(Path('models').glob('*')) + list(Path('preds').glob('*'))
