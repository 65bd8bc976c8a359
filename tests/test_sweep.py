"""Resumable sweeps: one run per device from a queue, checked before any run, stopped and started again; results and
the report over the runs they made."""
import json, os, signal, subprocess, sys, threading, time
from pathlib import Path
import pandas as pd
import pytest
from PIL import Image
from conftest import TINY, make_comp
from paddy.results import results
from paddy.sweep import run_env, run_queue
from test_cli import one_line_error, run

SPECS = {'tiny_convnext': TINY, 'tiny_effnet': TINY.replace('test_convnext', 'test_efficientnet')}


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
    me = {'PADDY_DIE_WITH': str(os.getpid())}  # so that the run stops when the sweep dies
    env = run_env('2', 3, base={'PATH': '/bin'})
    assert env == {'PATH': '/bin', 'CUDA_VISIBLE_DEVICES': '2', 'PADDY_WORKERS': '5', **me}
    assert run_env('0', 2, base={'PADDY_WORKERS': '1'})['PADDY_WORKERS'] == '1'  # the user's choice stands
    assert run_env(None, 1, base={'CUDA_VISIBLE_DEVICES': ''}) == {'CUDA_VISIBLE_DEVICES': '', **me}  # CPU: as it is



@pytest.mark.slow
def test_a_stop_raised_in_a_running_job_stops_its_process_with_sigterm(comp, tiny_spec, monkeypatch):
    """Ray's cancel raises KeyboardInterrupt in the task's thread, which a plain wait on the child never lets in: the
    job waits a second at a time, and on the stop sends its process SIGTERM (which `paddy train` saves its epoch on)."""
    import ctypes
    from paddy.sweep import Sweep, execute
    s = Sweep([str(tiny_spec)], data=comp, name='stop')
    s.folder.mkdir(parents=True)
    got = Path('got-term')
    child = ("import signal, sys, time, pathlib\n"  # stands in for paddy train: says it got SIGTERM, then ends
             f"signal.signal(signal.SIGTERM, lambda *a: (pathlib.Path({str(got)!r}).write_text('x'), sys.exit(3)))\n"
             "time.sleep(60)\n")
    monkeypatch.setattr(s, 'command', lambda job, run=None: [sys.executable, '-c', child])
    outcome = {}

    def job():
        try: outcome['out'] = execute(s, 'tiny-1', None, 1, 'here')
        except KeyboardInterrupt: outcome['stopped'] = time.time()

    t = threading.Thread(target=job)
    t.start()
    while not (s.folder / 'tiny-1.log').exists(): time.sleep(0.05)
    time.sleep(1)  # the child is in its sleep
    t0 = time.time()
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(t.ident), ctypes.py_object(KeyboardInterrupt))
    t.join(timeout=30)
    assert 'stopped' in outcome and outcome['stopped'] - t0 < 5, outcome  # not after the child's 60 s
    assert got.read_text() == 'x'


def test_a_job_started_again_beside_its_earlier_attempt_waits_for_it_and_never_trains_twice(comp, tiny_spec,
                                                                                              monkeypatch):
    """A Ray retry whose lost node lives on: while the earlier attempt holds the run, the job waits up to `wait`, then
    leaves it (busy); once that attempt has finished the job, it is done, and nothing is started."""
    from paddy import owner
    from paddy.sweep import Sweep, execute
    from paddy.files import write_json
    s = Sweep([str(tiny_spec)], data=comp, name='lost')
    s.folder.mkdir(parents=True)
    models, run = Path('models'), 'tiny-0a1b2c'
    write_json(models / f'{run}.state' / 'run.json', dict(run=run, experiment={}, split_seed=42,
                                                          settings=dict(sweep='lost/tiny-1')))
    monkeypatch.setattr(subprocess, 'Popen', lambda *a, **k: pytest.fail('nothing may start'))
    with owner.owned(models / f'{run}.state' / 'lock', str):  # the earlier attempt, still training
        t0 = time.time()
        out = execute(s, 'tiny-1', None, 1, 'here', wait=1.5)
        assert out['busy'].startswith(f'process {os.getpid()}') and out['resumed'] == run
        assert 1.5 <= time.time() - t0 < 5
        write_json(models / f'{run}.json', dict(run=run, sweep='lost/tiny-1'))  # it finishes the job meanwhile
        assert execute(s, 'tiny-1', None, 1, 'here', wait=1.5)['already'] == run


def test_sweep_arguments_are_checked_before_any_run(comp, monkeypatch):
    one_line_error(run('sweep', 'nope'), "no experiment 'nope'")
    one_line_error(run('sweep', 'demo_lite0'), 'no competition data', 'paddy download')
    monkeypatch.setenv('PADDY_DATA', str(comp))
    one_line_error(run('sweep', 'demo_lite0', '--repeat', '0'), '--repeat 0')
    one_line_error(run('sweep', 'demo_lite0', '--gpus', '0'), 'leave out --gpus')
    from paddy.sweep.jobs import run_env
    from paddy.sweep.local import Local, devices
    assert devices('none') == [''] and run_env('', 1)['CUDA_VISIBLE_DEVICES'] == ''  # the help's "none": CPU, even
    assert Local('none').open(None) == 'CPU, one at a time'                          # on a machine with GPUs
    assert not Path('models').exists()


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
    proc = subprocess.Popen(sweep_cmd(specs, comp), cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.time() + 240
    while not list((root / 'models').glob('*.json')) and time.time() < deadline and proc.poll() is None: time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    first_out = proc.communicate(timeout=120)[0]
    before = {f.name: f.read_text() for f in (root / 'models').glob('*.json')}
    second = subprocess.run(sweep_cmd(specs, comp), cwd=root, capture_output=True, text=True, timeout=600)
    return dict(root=root, first=proc.returncode, first_out=first_out, before=before, second=second)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_stopped_sweep_resumes_without_redoing_finished_runs(swept):
    root = swept['root']
    assert swept['first'] == 130 and 'stopped; run the same command again' in swept['first_out'], swept['first_out']
    assert 1 <= len(swept['before']) < 4
    second = swept['second']
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"4 runs, {len(swept['before'])} already finished, {4 - len(swept['before'])} to go" in second.stdout
    metas = [json.loads(f.read_text()) for f in (root / 'models').glob('*.json')]
    assert (sorted(m['sweep'] for m in metas) == ['tiny/tiny_convnext-1', 'tiny/tiny_convnext-2', 'tiny/tiny_effnet-1',
                                                  'tiny/tiny_effnet-2'])
    for name, text in swept['before'].items(): assert (root / 'models' / name).read_text() == text  # untouched
    # the stopped run left no half: every model and prediction file belongs to a finished run
    runs = {m['run'] for m in metas}
    assert {f.stem for f in (root / 'models').glob('*.pkl')} == runs == {f.stem for f in (root / 'preds').glob('*.npz')}
    logs = sorted(p.name for p in (root / 'sweeps' / 'tiny').glob('*.log'))
    assert logs == ['tiny_convnext-1.log', 'tiny_convnext-2.log', 'tiny_effnet-1.log', 'tiny_effnet-2.log']
    assert all('--sweep tiny/' in (root / 'sweeps' / 'tiny' / l).read_text() for l in logs)


@pytest.mark.slow
def test_results_and_report_over_the_swept_runs(swept, monkeypatch):
    monkeypatch.chdir(swept['root'])
    df = results()
    assert len(df) == 4 and set(df.family) == {'convnext', 'efficientnet'} and set(df.dataset) == {'comp'}
    assert (df.groupby('experiment').run.count() == 2).all()
    r = run('results', '--csv', 'runs.csv')
    assert r.exit_code == 0 and 'tiny_effnet' in r.output and len(pd.read_csv('runs.csv')) == 4
    r = run('report', '--name', 'tiny', '--top', '1')
    assert r.exit_code == 0, r.output
    want = df.groupby('experiment').agg(e=('error_rate', 'mean'), t=('fit_time', 'mean'))  # the mean by default
    want = (want.e * (want.t + 80)).sort_values()
    assert 'top 1 by score' in r.output
    saved = pd.read_csv('reports/tiny.csv').set_index('experiment')
    assert saved.score.to_dict() == pytest.approx(want.to_dict())
    with Image.open('reports/tiny.png') as im: assert im.format == 'PNG' and im.size[0] > 500


def test_an_edited_experiment_is_a_new_sweep_not_the_old_ones_runs(comp, tiny_spec):
    from paddy.errors import PaddyError
    from paddy.sweep.jobs import Sweep
    old = Sweep([str(tiny_spec)], data=comp)
    old.start()
    tiny_spec.write_text(tiny_spec.read_text().replace('epochs = 1', 'epochs = 2'))
    new = Sweep([str(tiny_spec)], data=comp)
    assert new.name != old.name  # its runs are another sweep's: none of the old recipe counts as finished
    named = Sweep([str(tiny_spec)], data=comp, name=old.name)
    with pytest.raises(PaddyError, match=r'trained another recipe of tiny, edited since .* another --name'):
        named.start()
