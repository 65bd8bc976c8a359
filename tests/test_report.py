"""The ranking report's arithmetic on known figures, its files and provenance, and the gist it can publish."""
import json, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import pandas as pd
import pytest
from PIL import Image
from conftest import TINY
from paddy.errors import PaddyError
from paddy.report import report
from paddy.results import COLUMNS
from test_cli import one_line_error, run

SPECS = {'tiny_convnext': TINY, 'tiny_effnet': TINY.replace('test_convnext', 'test_efficientnet')}


def runs_with_known_figures() -> pd.DataFrame:
    "Three experiments, two of them repeated, on one dataset; and one run on another dataset."
    rows = [('a', 'convnext', 0.02, 100), ('a', 'convnext', 0.04, 140), ('b', 'vit', 0.03, 50), ('b', 'vit', 0.05, 30),
            ('c', 'swin', 0.01, 400), ('d', 'resnet', 0.10, 10), ('e', 'resnet', 0.50, 5)]
    df = pd.DataFrame([dict(run=f'{e}-{k}', dataset='paddy', experiment=e, recipe='r' + e, arch=f'{f}_x', family=f,
                            resize='squish', item_size='480',
                            size='224', accum=1, epochs=12, error_rate=err, tta_error_rate=err * 0.9, tta_helped=True,
                            fit_time=t,
                            gpu_mem_gb=1.0, device='cuda', sweep=None, created=str(k))
                       for k, (e, f, err, t) in enumerate(rows)], columns=COLUMNS)
    other = df.iloc[:1].assign(dataset='other', run='z-0', error_rate=0.9, fit_time=1000.0)
    return pd.concat([df, other], ignore_index=True)


def test_report_scores_and_the_median_subset_from_known_figures(capsys):
    r = report(runs_with_known_figures(), dataset='paddy', top=3, constant=80, agg='min', name='known')
    p = r['pivot'].set_index('experiment')
    # min is the best run whole: b's 0.03 came with 50 s, and its 30 s run erred 0.05, so (0.03, 30) was no run's
    assert p.loc['a', ['error_rate', 'fit_time', 'runs']].tolist() == [0.02, 100, 2]
    assert p.loc['b', ['error_rate', 'fit_time']].tolist() == [0.03, 50]
    # the score goes by the TTA error, what a submission is made from: 0.9 of the plain one here
    expected = {'a': 0.02 * 180, 'b': 0.03 * 130, 'c': 0.01 * 480, 'd': 0.10 * 90, 'e': 0.50 * 85}
    assert p.score.to_dict() == pytest.approx({k: 0.9 * v for k, v in expected.items()})
    assert r['top'].experiment.tolist() == ['a', 'b', 'c']
    # medians: error 0.03, fit 50; a and c are more accurate but slower, d and e faster but worse: none is both
    assert r['better_and_faster'].experiment.tolist() == []
    out = capsys.readouterr().out
    assert 'top 3 by score' in out and 'better and faster than the median:\n(none)' in out
    assert 'other' not in set(r['pivot'].dataset)


def test_report_mean_over_repeats_and_a_nonempty_subset():
    r = report(runs_with_known_figures(), dataset='paddy', agg='mean', constant=0, name='mean')
    p = r['pivot'].set_index('experiment')
    assert p.loc['a', 'error_rate'] == pytest.approx(0.03) and p.loc['a', 'fit_time'] == pytest.approx(120)
    assert p.loc['b', 'error_rate'] == pytest.approx(0.04) and p.loc['b', 'fit_time'] == pytest.approx(40)
    assert p.score.to_dict() == pytest.approx({'a': 3.24, 'b': 1.44, 'c': 3.6, 'd': 0.9, 'e': 2.25})
    # the spread of repeats: a's TTA errors 0.018 and 0.036, b's 0.027 and 0.045; one run has none
    assert p.spread.a == pytest.approx(0.018 / 2 ** 0.5) and p.spread.b == pytest.approx(0.018 / 2 ** 0.5)
    assert p.spread[['c', 'd', 'e']].isna().all()
    # medians 0.04 and 40: d is faster but worse, c better but slower
    assert (r['better_and_faster'].experiment.tolist() == [])
    df = runs_with_known_figures()
    # now errors .03 .04 .01 .012 .5 (median .03), fits 120 40 400 10 5 (median 40)
    df.loc[df.experiment == 'd', ['error_rate', 'tta_error_rate']] = 0.012, 0.0108
    r = report(df, dataset='paddy', agg='mean', name='subset')
    assert r['better_and_faster'].experiment.tolist() == ['d']  # c is better but slower, e faster but worse


def test_the_report_ranks_by_tta_error_and_marks_what_is_within_noise_of_the_best(capsys):
    import numpy as np
    from paddy.predict import save_preds
    df = runs_with_known_figures()
    df.loc[df.experiment == 'e', 'tta_error_rate'] = None  # no TTA: ranked by its plain error
    df.loc[df.experiment == 'd', 'tta_error_rate'] = 0.001  # TTA says d is best, though its plain error is worst
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 3, 200)
    good = np.eye(3)[targets]  # right on every image
    bad = np.eye(3)[(targets + (rng.random(200) < 0.5)) % 3]  # wrong on about half
    for name in df.run:
        save_preds(Path('preds') / f'{name}.npz', name, dict(
            vocab=np.array(['x', 'y', 'z']), test_ids=np.array(['t']), test_probs=np.ones((1, 3)) / 3,
            valid_ids=np.array([f'i{k}' for k in range(200)]), valid_targets=targets,
            valid_probs=bad if name.startswith('e') else good))
    df['fit'] = ''
    df.loc[df.run == 'b-2', 'fit'] = 'underfits'
    r = report(df, dataset='paddy', constant=0, name='noise')
    assert 'underfits (training loss above validation loss at the end: more epochs): b-2' in capsys.readouterr().out
    p = r['pivot'].set_index('experiment')
    assert p.index[0] == 'd' and p.loc['d', 'score'] == pytest.approx(0.001 * 10)
    assert p.loc['e', 'score'] == pytest.approx(0.5 * 5)
    assert p.loc[['a', 'b', 'c', 'd'], 'same_as_best'].tolist() == [True] * 4  # the same predictions
    assert p.loc['e', 'same_as_best'] is False or p.loc['e', 'same_as_best'] == False  # noqa: E712
    assert p.loc['e', 'lo'] < 0.5 < p.loc['e', 'hi']


def test_report_vs_gives_the_paired_difference_and_who_alone_is_right(capsys):
    import numpy as np
    from paddy.predict import save_preds
    from paddy.report import versus
    df = runs_with_known_figures()
    targets = np.arange(200) % 3
    right_all = np.eye(3)[targets]
    wrong_40 = right_all.copy()
    wrong_40[:40] = np.eye(3)[(targets[:40] + 1) % 3]  # b wrong on the first 40
    for name in df.run:
        save_preds(Path('preds') / f'{name}.npz', name, dict(
            vocab=np.array(['x', 'y', 'z']), valid_ids=np.array([f'i{k}' for k in range(200)]), valid_targets=targets,
            valid_probs=wrong_40 if name.startswith('b') else right_all))
    v = versus(df, 'a', 'b', dataset='paddy')
    assert v['diff'] == pytest.approx(-0.2) and (v['a_only'], v['b_only'], v['indistinguishable']) == (40, 0, False)
    assert v['lo'] < -0.2 < v['hi'] < 0
    assert 'a is better beyond the noise' in capsys.readouterr().out
    assert versus(df, 'a', 'c', dataset='paddy')['indistinguishable']
    with pytest.raises(PaddyError, match="no experiment 'nope' among the runs; there are a, b, c, d, e"):
        versus(df, 'a', 'nope', dataset='paddy')
    with pytest.raises(PaddyError, match="'a' has runs on 2 datasets: pass --dataset"): versus(df, 'a', 'b')


def test_overridden_runs_are_not_repeats():
    df = runs_with_known_figures()
    df.loc[1, 'recipe'] = 'other'  # a's second run had an override: --set epochs=1, say
    p = report(df, dataset='paddy', name='recipes')['pivot'].set_index('experiment')
    assert p.loc['a@ra', ['runs', 'error_rate', 'fit_time']].tolist() == [1, 0.02, 100]
    assert p.loc['a@other', ['runs', 'error_rate', 'fit_time']].tolist() == [1, 0.04, 140]
    assert p.loc['b', 'runs'] == 2


def test_report_writes_a_plot_csv_and_provenance_and_never_overwrites():
    r = report(runs_with_known_figures(), name='files')
    with Image.open(r['files']['png']) as im:
        im.load()
        assert im.format == 'PNG' and im.width > 1000 and im.height > 400  # two datasets: two panels side by side
    saved = pd.read_csv(r['files']['csv'])
    assert len(saved) == 6 and list(saved.columns)[-4:] == ['score', 'lo', 'hi', 'same_as_best']
    meta = json.loads(r['files']['json'].read_text())
    assert meta['score_constant'] == 80 and len(meta['runs']) == 8 and meta['versions']['pandas']
    with pytest.raises(PaddyError, match='never overwritten'): report(runs_with_known_figures(), name='files')


def test_report_bad_input_is_one_line(tmp_path):
    one_line_error(run('report'), 'no finished runs in models/')
    Path('models').mkdir()
    Path('models/broken.json').write_text('{not json')
    r = run('report')
    assert r.exit_code == 2 and 'skipping models/broken.json' in r.output and 'no finished runs' in r.output
    one_line_error(run('report', '--gist'), 'GITHUB_TOKEN')


class GistStub(BaseHTTPRequestHandler):
    got = []

    def log_message(self, *a): pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
        GistStub.got.append((self.path, self.headers['Authorization'], body))
        ok = self.headers['Authorization'] == 'Bearer good'
        out = json.dumps({'html_url': 'https://gist.github.com/me/abc'} if ok else {'message': 'Bad credentials'})
        self.send_response(201 if ok else 401)
        self.send_header('Content-Length', str(len(out.encode())))
        self.end_headers()
        self.wfile.write(out.encode())


def test_report_gist_posts_the_csv(monkeypatch):
    srv = ThreadingHTTPServer(('127.0.0.1', 0), GistStub)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv('PADDY_GITHUB_API', f'http://127.0.0.1:{srv.server_port}')
        monkeypatch.setenv('GITHUB_TOKEN', 'good')
        Path('models').mkdir()
        for k, r in runs_with_known_figures().iterrows():  # metadata files as training writes them
            Path(f'models/{r.run}.json').write_text(json.dumps(dict(run=r.run, data=f'/x/{r.dataset}',
                                                                    error_rate=r.error_rate,
                                                                    tta_error_rate=r.tta_error_rate,
                                                                    fit_time=r.fit_time, created=str(k),
                                                                    experiment=dict(name=r.experiment, arch=r.arch))))
        res = run('report', '--gist', '--name', 'g')
        assert res.exit_code == 0, res.output
        assert 'published reports/g.csv as https://gist.github.com/me/abc' in res.output
        path, auth, body = GistStub.got[-1]
        assert path == '/gists'
        assert body['public'] is False
        assert body['files']['g.csv']['content'] == Path('reports/g.csv').read_text()
        monkeypatch.setenv('GITHUB_TOKEN', 'bad')
        res = run('report', '--gist', '--name', 'g2')
        errors = [l for l in res.output.splitlines() if l.startswith('paddy: error: ')]
        assert res.exit_code == 2
        assert len(errors) == 1
        assert errors[0].startswith('paddy: error: GitHub refused the token (401)')
        assert Path('reports/g2.csv').is_file()  # the report stays, and the message says where
    finally: srv.shutdown(); srv.server_close()


def test_the_plot_labels_no_minor_ticks_across_decades(monkeypatch):
    "Fit times from 5 s to 400 s: minor tick labels at 20, 30, … 90 would run together, so only the decades are named."
    import matplotlib.pyplot as plt
    figs = []
    monkeypatch.setattr(plt, 'close', figs.append)
    report(runs_with_known_figures(), dataset='paddy', name='ticks')
    ax = figs[0].axes[0]
    lo, hi = ax.get_xlim()
    visible = lambda minor: [t.get_text() for t, x in zip(ax.get_xticklabels(minor=minor), ax.get_xticks(minor=minor))
                             if lo <= x <= hi and t.get_text()]
    assert visible(minor=False) == ['10', '100'] and visible(minor=True) == []
