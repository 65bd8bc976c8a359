"""Results, the ranking report and resumable sweeps: tiny real runs on CPU, and the report's arithmetic on known figures."""
import json, signal, subprocess, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from conftest import TINY, make_comp
from paddy.errors import PaddyError
from paddy.report import report
from paddy.results import COLUMNS, family, results
from paddy.sweep import run_env, run_queue
from paddy.train import whole_or_nothing
from test_cli import one_line_error, run

SPECS = {'tiny_convnext': TINY, 'tiny_effnet': TINY.replace('test_convnext', 'test_efficientnet')}


@pytest.mark.parametrize('arch, fam', [
    ('convnext_small.fb_in22k', 'convnext'), ('convnext_large_in22k', 'convnext'), ('convnextv2_tiny', 'convnextv2'),
    ('vit_small_patch16_224.augreg_in21k', 'vit'), ('swinv2_base_window12_192.ms_in22k', 'swinv2'),
    ('swin_small_patch4_window7_224', 'swin'), ('resnet18', 'resnet'), ('resnet26d', 'resnetd'), ('regnety_040', 'regnet'),
    ('efficientnet_b0', 'efficientnet'), ('tf_efficientnet_lite0', 'efficientnet'), ('test_convnext', 'convnext'),
    ('levit_128', 'levit'), ('MyNet', 'mynet'), ('3dnet', '3dnet'), ('_x', '_x'), ('', ''),
])
def test_family_from_the_timm_name(arch, fam):
    assert family(arch) == fam


def runs_with_known_figures() -> pd.DataFrame:
    "Three experiments, two of them repeated, on one dataset; and one run on another dataset."
    rows = [('a', 'convnext', 0.02, 100), ('a', 'convnext', 0.04, 140), ('b', 'vit', 0.03, 50), ('b', 'vit', 0.05, 30),
            ('c', 'swin', 0.01, 400), ('d', 'resnet', 0.10, 10), ('e', 'resnet', 0.50, 5)]
    df = pd.DataFrame([dict(run=f'{e}-{k}', dataset='paddy', experiment=e, recipe='r' + e, arch=f'{f}_x', family=f, resize='squish', item_size='480',
                            size='224', accum=1, epochs=12, error_rate=err, tta_error_rate=err * 0.9, tta_helped=True, fit_time=t,
                            gpu_mem_gb=1.0, device='cuda', sweep=None, created=str(k))
                       for k, (e, f, err, t) in enumerate(rows)], columns=COLUMNS)
    other = df.iloc[:1].assign(dataset='other', run='z-0', error_rate=0.9, fit_time=1000.0)
    return pd.concat([df, other], ignore_index=True)


def test_report_scores_and_the_median_subset_from_known_figures(capsys):
    r = report(runs_with_known_figures(), dataset='paddy', top=3, constant=80, agg='min', name='known')
    p = r['pivot'].set_index('experiment')
    # min over repeats, each column on its own, as the seed notebook's pivot did
    assert p.loc['a', ['error_rate', 'fit_time', 'runs']].tolist() == [0.02, 100, 2]
    assert p.loc['b', ['error_rate', 'fit_time']].tolist() == [0.03, 30]
    expected = {'a': 0.02 * 180, 'b': 0.03 * 110, 'c': 0.01 * 480, 'd': 0.10 * 90, 'e': 0.50 * 85}
    assert p.score.to_dict() == pytest.approx(expected)
    assert r['top'].experiment.tolist() == ['b', 'a', 'c']
    # medians: error 0.03, fit 30; a and c are more accurate but slower, d and e faster but worse: none is both
    assert r['better_and_faster'].experiment.tolist() == []
    out = capsys.readouterr().out
    assert 'top 3 by score' in out and 'better and faster than the median:\n(none)' in out
    assert 'other' not in set(r['pivot'].dataset)


def test_report_mean_over_repeats_and_a_nonempty_subset():
    r = report(runs_with_known_figures(), dataset='paddy', agg='mean', constant=0, name='mean')
    p = r['pivot'].set_index('experiment')
    assert p.loc['a', 'error_rate'] == pytest.approx(0.03) and p.loc['a', 'fit_time'] == pytest.approx(120)
    assert p.loc['b', 'error_rate'] == pytest.approx(0.04) and p.loc['b', 'fit_time'] == pytest.approx(40)
    assert p.score.to_dict() == pytest.approx({'a': 3.6, 'b': 1.6, 'c': 4.0, 'd': 1.0, 'e': 2.5})
    assert r['better_and_faster'].experiment.tolist() == []  # medians 0.04 and 40: d is faster but worse, c better but slower
    df = runs_with_known_figures()
    df.loc[df.experiment == 'd', 'error_rate'] = 0.012  # now errors .03 .04 .01 .012 .5 (median .03), fits 120 40 400 10 5 (median 40)
    r = report(df, dataset='paddy', agg='mean', name='subset')
    assert r['better_and_faster'].experiment.tolist() == ['d']  # c is better but slower, e faster but worse


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
    assert len(saved) == 6 and list(saved.columns)[-1] == 'score'
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


def test_run_queue_keeps_one_job_per_device():
    busy, seen, lock = {}, [], threading.Lock()

    def launch(job, dev):
        with lock:
            assert dev not in busy, f'{dev} got a second job'
            busy[dev] = job
        time.sleep(0.05)
        with lock: busy.pop(dev); seen.append((job, dev))
        return 0 if job != 'j3' else 1

    codes = run_queue([f'j{i}' for i in range(7)], ['0', '1', '2'], launch, threading.Event())
    assert sorted(j for j, _ in seen) == [f'j{i}' for i in range(7)] and {d for _, d in seen} == {'0', '1', '2'}
    assert codes['j3'] == 1 and sum(codes.values()) == 1


def test_each_parallel_run_gets_its_gpu_and_a_share_of_the_cores(monkeypatch):
    monkeypatch.setattr('os.cpu_count', lambda: 16)
    env = run_env('2', 3, base={'PATH': '/bin'})
    assert env == {'PATH': '/bin', 'CUDA_VISIBLE_DEVICES': '2', 'PADDY_WORKERS': '5'}
    assert run_env('0', 2, base={'PADDY_WORKERS': '1'})['PADDY_WORKERS'] == '1'  # the user's choice stands
    assert run_env(None, 1, base={'CUDA_VISIBLE_DEVICES': ''}) == {'CUDA_VISIBLE_DEVICES': ''}  # CPU: left as it is


def test_an_unfinished_run_leaves_nothing(tmp_path):
    m, p = Path('models'), Path('preds')
    m.mkdir(); p.mkdir()
    (m / 'r.pkl').write_text('half'); (p / 'r.npz').write_text('half')
    with pytest.raises(KeyboardInterrupt), whole_or_nothing('r', m, p): raise KeyboardInterrupt
    assert not (m / 'r.pkl').exists() and not (p / 'r.npz').exists()
    for f in (m / 's.pkl', p / 's.npz', m / 's.json'): f.write_text('whole')
    with pytest.raises(RuntimeError), whole_or_nothing('s', m, p): raise RuntimeError
    assert all(f.exists() for f in (m / 's.pkl', p / 's.npz'))


def test_sweep_arguments_are_checked_before_any_run(comp, monkeypatch):
    one_line_error(run('sweep', 'nope'), "no experiment 'nope'")
    one_line_error(run('sweep', 'demo_lite0'), 'no competition data', 'paddy download')
    monkeypatch.setenv('PADDY_DATA', str(comp))
    one_line_error(run('sweep', 'demo_lite0', '--repeat', '0'), '--repeat 0')
    one_line_error(run('sweep', 'demo_lite0', '--gpus', '0'), 'leave out --gpus')
    assert not Path('models').exists()


def test_wandb_is_an_optional_extra_with_a_clear_error():
    try: import wandb  # noqa: F401
    except ImportError: pass
    else: pytest.skip('wandb is installed here; the error only shows without it')
    one_line_error(run('train', 'demo_lite0', '--wandb'), 'pip install wandb')
    one_line_error(run('report', '--wandb', 'e/p/s'), 'pip install wandb')
    assert not Path('models').exists()


def test_wandb_offline_logs_each_training_epoch(comp, tiny_spec, monkeypatch, tmp_path):
    "Runs only where the wandb extra is installed (.venv/bin/pip install -e '.[wandb]'): offline mode, nothing leaves the machine."
    wandb = pytest.importorskip('wandb')
    monkeypatch.setenv('WANDB_MODE', 'offline'); monkeypatch.setenv('WANDB_DIR', str(tmp_path)); monkeypatch.setenv('WANDB_SILENT', 'true')
    logged = []
    real_init = wandb.init
    def init(*a, **k):  # wandb.init rebinds wandb.log to the run's, so watch the run's log instead
        r = real_init(*a, **k); real_log = r.log
        r.log = lambda d, *x, **y: (logged.append(d), real_log(d, *x, **y))[1]
        wandb.log = r.log
        return r
    monkeypatch.setattr(wandb, 'init', init)
    from paddy.spec import load
    from paddy.train import train
    meta = train(load(str(tiny_spec), ['epochs=2']), data=comp, wandb=True)
    assert [d['epoch'] for d in logged] == [0, 1] and all({'train_loss', 'valid_loss', 'error_rate'} <= set(d) for d in logged)
    assert list((tmp_path / 'wandb').glob('offline-run-*')) and Path(f"models/{meta['run']}.json").exists()


def sweep_cmd(specs: Path, comp: Path) -> list[str]:
    return [sys.executable, '-m', 'paddy.cli', 'sweep', str(specs / 'tiny_convnext.py'), str(specs / 'tiny_effnet.py'),
            '--repeat', '2', '--data', str(comp), '--name', 'tiny']


@pytest.fixture(scope='module')
def swept(tmp_path_factory):
    "A sweep of two families × 2 repeats, stopped with SIGINT after its first run, then started again."
    root = tmp_path_factory.mktemp('sweep')
    comp, specs = make_comp(root / 'comp'), root / 'specs'
    specs.mkdir()
    for name, text in SPECS.items(): (specs / f'{name}.py').write_text(text)
    proc = subprocess.Popen(sweep_cmd(specs, comp), cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while not list((root / 'models').glob('*.json')) and time.time() < deadline and proc.poll() is None: time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    first_out = proc.communicate(timeout=120)[0]
    before = {f.name: f.read_text() for f in (root / 'models').glob('*.json')}
    second = subprocess.run(sweep_cmd(specs, comp), cwd=root, capture_output=True, text=True, timeout=600)
    return dict(root=root, first=proc.returncode, first_out=first_out, before=before, second=second)


@pytest.mark.timeout(900)
def test_a_stopped_sweep_resumes_without_redoing_finished_runs(swept):
    root = swept['root']
    assert swept['first'] == 130 and 'stopped; run the same command again' in swept['first_out'], swept['first_out']
    assert 1 <= len(swept['before']) < 4
    second = swept['second']
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"4 runs, {len(swept['before'])} already finished, {4 - len(swept['before'])} to go" in second.stdout
    metas = [json.loads(f.read_text()) for f in (root / 'models').glob('*.json')]
    assert sorted(m['sweep'] for m in metas) == ['tiny/tiny_convnext-1', 'tiny/tiny_convnext-2', 'tiny/tiny_effnet-1', 'tiny/tiny_effnet-2']
    for name, text in swept['before'].items(): assert (root / 'models' / name).read_text() == text  # untouched
    # the stopped run left no half: every model and prediction file belongs to a finished run
    runs = {m['run'] for m in metas}
    assert {f.stem for f in (root / 'models').glob('*.pkl')} == runs == {f.stem for f in (root / 'preds').glob('*.npz')}
    logs = sorted(p.name for p in (root / 'sweeps' / 'tiny').glob('*.log'))
    assert logs == ['tiny_convnext-1.log', 'tiny_convnext-2.log', 'tiny_effnet-1.log', 'tiny_effnet-2.log']
    assert all('--sweep tiny/' in (root / 'sweeps' / 'tiny' / l).read_text() for l in logs)


def test_results_and_report_over_the_swept_runs(swept, monkeypatch):
    monkeypatch.chdir(swept['root'])
    df = results()
    assert len(df) == 4 and set(df.family) == {'convnext', 'efficientnet'} and set(df.dataset) == {'comp'}
    assert (df.groupby('experiment').run.count() == 2).all()
    r = run('results', '--csv', 'runs.csv')
    assert r.exit_code == 0 and 'tiny_effnet' in r.output and len(pd.read_csv('runs.csv')) == 4
    r = run('report', '--name', 'tiny', '--top', '1')
    assert r.exit_code == 0, r.output
    want = df.groupby('experiment').agg(e=('error_rate', 'min'), t=('fit_time', 'min'))
    want = (want.e * (want.t + 80)).sort_values()
    assert f'top 1 by score' in r.output
    saved = pd.read_csv('reports/tiny.csv').set_index('experiment')
    assert saved.score.to_dict() == pytest.approx(want.to_dict())
    with Image.open('reports/tiny.png') as im: assert im.format == 'PNG' and im.size[0] > 500


class GistStub(BaseHTTPRequestHandler):
    got = []

    def log_message(self, *a): pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
        GistStub.got.append((self.path, self.headers['Authorization'], body))
        ok = self.headers['Authorization'] == 'Bearer good'
        out = json.dumps({'html_url': 'https://gist.github.com/me/abc'} if ok else {'message': 'Bad credentials'}).encode()
        self.send_response(201 if ok else 401); self.send_header('Content-Length', str(len(out))); self.end_headers(); self.wfile.write(out)


def test_report_gist_posts_the_csv(monkeypatch):
    srv = ThreadingHTTPServer(('127.0.0.1', 0), GistStub)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv('PADDY_GITHUB_API', f'http://127.0.0.1:{srv.server_port}')
        monkeypatch.setenv('GITHUB_TOKEN', 'good')
        Path('models').mkdir()
        for k, r in runs_with_known_figures().iterrows():  # metadata files as training writes them
            Path(f'models/{r.run}.json').write_text(json.dumps(dict(run=r.run, data=f'/x/{r.dataset}', error_rate=r.error_rate,
                                                                    tta_error_rate=r.tta_error_rate, fit_time=r.fit_time, created=str(k),
                                                                    experiment=dict(name=r.experiment, arch=r.arch))))
        res = run('report', '--gist', '--name', 'g')
        assert res.exit_code == 0, res.output
        assert 'published reports/g.csv as https://gist.github.com/me/abc' in res.output
        path, auth, body = GistStub.got[-1]
        assert path == '/gists' and body['public'] is False and body['files']['g.csv']['content'] == Path('reports/g.csv').read_text()
        monkeypatch.setenv('GITHUB_TOKEN', 'bad')
        res = run('report', '--gist', '--name', 'g2')
        errors = [l for l in res.output.splitlines() if l.startswith('paddy: error: ')]
        assert res.exit_code == 2 and len(errors) == 1 and errors[0].startswith('paddy: error: GitHub refused the token (401)')
        assert Path('reports/g2.csv').is_file()  # the report stays, and the message says where
    finally: srv.shutdown(); srv.server_close()


def test_wandb_runs_become_results_rows():
    "No W&B service here: the mapping from a run's config and summary is what can be checked offline."
    from paddy.wandb_io import from_run
    seed = from_run('ancient-sweep-3', {'model_name': 'convnext_small_in22k', 'resize_method': 'squish', 'dataset': 'paddy'},
                    {'error_rate': 0.02, '_runtime': 300.0, 'GPU_mem': 5.1})
    assert (seed['family'], seed['resize'], seed['dataset'], seed['fit_time'], seed['gpu_mem_gb']) == ('convnext', 'squish', 'paddy', 300.0, 5.1)
    ours = from_run('vit_small_squish-abc123', {'experiment': {'name': 'vit_small_squish', 'arch': 'vit_small_patch16_224', 'aug_size': 224},
                                                'data': '/kaggle/input/paddy-disease-classification'},
                    {'error_rate': 0.03, 'tta_error_rate': 0.025, 'fit_time': 120.0, 'peak_gpu_mem_gb': 3.0, '_runtime': 200.0})
    assert (ours['experiment'], ours['family'], ours['dataset'], ours['fit_time'], ours['tta_helped']) == \
        ('vit_small_squish', 'vit', 'paddy-disease-classification', 120.0, True)
