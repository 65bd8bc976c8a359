"""`paddy kaggle run/status/pull` through the real kaggle client against the stand-in; the kernel's script run here."""
import csv, json, os, shutil, subprocess, sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import make_comp
from kaggle_stub import StubKaggle
from paddy.predict import save_preds
from test_cli import one_line_error, run
from test_kaggle import COMP, KEY, kaggle_env  # noqa: F401 (the autouse fixture: credentials from the environment only)

KERNEL = 'tester/paddy-demo-scratch'
FAST = ('--set', 'epochs=1', '--set', 'bs=8')  # 29 training images: a batch of 64 would never fill


@pytest.fixture(autouse=True)
def upload_state(tmp_path, monkeypatch):
    "The client keeps resumable-upload state in the system temp folder; one test's must not resume another's."
    import tempfile
    (tmp_path / 'sys-tmp').mkdir()
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path / 'sys-tmp'))


@pytest.fixture
def stub(monkeypatch):
    import paddy.kaggle.bundle
    monkeypatch.setattr(paddy.kaggle.bundle, 'POLL_S', 0.05)  # the stand-in's new versions turn current at once
    with StubKaggle(b'', COMP) as s: yield s


@pytest.fixture
def local():
    "The project's own copy of the competition, where pulled runs must fit."
    return make_comp(Path('data') / COMP)


def test_dry_run_writes_both_folders_and_pushes_nothing(stub):
    r = run('kaggle', 'run', 'demo_scratch', '--repeat', '2', *FAST, '--fit-memory', '15', '--dry-run', 'out')
    assert r.exit_code == 0, r.output
    assert stub.calls == [] and not Path('kaggle-runs.csv').exists()
    meta = json.loads(Path('out/kernel/kernel-metadata.json').read_text())
    want = dict(id=KERNEL, competition_sources=[COMP], dataset_sources=['tester/paddy-lib'], enable_gpu=True,
                enable_internet=True, kernel_type='script', machine_shape='NvidiaTeslaT4')
    assert {k: meta[k] for k in want} == want
    text = Path('out/kernel', meta['code_file']).read_text()
    manifest_file, = Path('out/dataset').glob('paddy-*.json')
    manifest = json.loads(manifest_file.read_text())
    assert manifest_file.name == f"paddy-{manifest['bundle']}.json" and manifest['experiments'] == ['demo_scratch']
    assert f"'bundle': '{manifest['bundle']}'" in text
    assert "'args': ['--repeat', '2', '--set', 'epochs=1', '--set', 'bs=8', '--fit-memory', '15']" in text
    spec = Path('out/dataset/demo_scratch.py').read_text()
    assert 'epochs = 1\n' in spec
    assert 'bs = 8\n' in spec
    assert "arch = 'resnet18'" in spec
    assert 'import' not in spec  # its base, resolved
    from paddy.files import sha256
    assert {f: sha256(Path('out/dataset') / f) for f in manifest['files']} == manifest['files']
    assert KEY not in r.output
    assert not any(KEY in p.read_text(errors='ignore') for p in Path('out').rglob('*') if p.is_file())

    one_line_error(run('kaggle', 'run', 'demo_scratch', '--dry-run', 'out'), 'not empty')
    one_line_error(run('kaggle', 'run', 'demo_scratch', '--accelerator', 'TpuV5E8', '--dry-run', 'out2'),
                   'NvidiaTeslaT4')
    one_line_error(run('kaggle', 'run', 'demo_scratch', '--set', 'pretrained=/home/me/w.pth', '--dry-run', 'out3'),
                   "Kaggle notebook can't read")
    one_line_error(run('kaggle', 'run', 'demo_scrach', '--dry-run', 'out4'), 'did you mean demo_scratch')
    assert not any(Path(f'out{k}').exists() for k in (2, 3, 4))


def test_push_versions_the_dataset_only_when_it_changed(stub):
    r = run('kaggle', 'run', 'demo_scratch', *FAST)
    assert r.exit_code == 0, r.output
    assert (stub.endpoints() == ['GetDatasetStatus'] * 2 + ['StartBlobUpload'] * 3
            + ['CreateDataset', 'GetDatasetStatus', 'ListDatasetFiles', 'SaveKernel', 'GetAcceleratorQuotaStatistics'])
    files, = stub.datasets['tester/paddy-lib']
    manifest = json.loads(next(v for k, v in files.items() if k.startswith('paddy-') and k.endswith('.json')))
    wheel = f"paddy-{version('paddy')}-py3-none-any.whl"
    assert set(files) == {wheel, 'demo_scratch.py', f"paddy-{manifest['bundle']}.json"}
    assert b'epochs = 1\n' in files['demo_scratch.py'] and files[wheel][:2] == b'PK'
    create = dict(stub.calls)['CreateDataset']
    assert create['isPrivate'] is True and create['ownerSlug'] == 'tester' and create['slug'] == 'paddy-lib'
    push = dict(stub.calls)['SaveKernel']
    want = dict(slug=KERNEL, competitionDataSources=[COMP], datasetDataSources=['tester/paddy-lib'], enableGpu=True,
                enableInternet=True, kernelType='script', machineShape='NvidiaTeslaT4')
    assert {k: push[k] for k in want} == want
    assert f"'bundle': '{manifest['bundle']}'" in push['text'] and 'def main(' in push['text']
    assert f'http://localhost:7777/code/{KERNEL}' in r.output and '20.0 of 30.0 GPU hours left' in r.output

    assert run('kaggle', 'run', 'demo_scratch', *FAST).exit_code == 0  # the same contents: no new version
    assert len(stub.datasets['tester/paddy-lib']) == 1
    assert 'already holds' in run('kaggle', 'run', 'demo_scratch', *FAST).output
    r = run('kaggle', 'run', 'demo_scratch', '--set', 'epochs=2', '--set', 'bs=8')
    assert r.exit_code == 0 and 'versioned' in r.output
    assert len(stub.datasets['tester/paddy-lib']) == 2
    assert b'epochs = 2\n' in stub.datasets['tester/paddy-lib'][1]['demo_scratch.py']
    assert [c[0] for c in stub.calls].count('CreateDatasetVersion') == 1
    # READY at first described the version before; the kernel was pushed once the new one was current
    assert 'waiting for Kaggle to make paddy' in r.output and stub.mounted[KERNEL] == [0, 0, 0, 1]

    rows = list(csv.DictReader(Path('kaggle-runs.csv').read_text().splitlines()))
    pushed = ((1, 'epochs=1 bs=8'), (2, 'epochs=1 bs=8'), (3, 'epochs=1 bs=8'), (4, 'epochs=2 bs=8'))
    assert [(x['kernel'], x['version'], x['set']) for x in rows] == [(KERNEL, str(k), s) for k, s in pushed]
    assert rows[0]['bundle'] == manifest['bundle']
    assert rows[0]['experiments'] == 'demo_scratch'
    assert rows[0]['paddy_commit']
    assert KEY not in r.output and KEY not in Path('kaggle-runs.csv').read_text()


def test_unaccepted_rules_stop_the_push_in_one_line(stub):
    stub.fail['SaveKernel'] = (403, 'You must accept the competition rules to use its data')
    error_after_progress(run('kaggle', 'run', 'demo_scratch', *FAST), '403',
                         f'https://www.kaggle.com/competitions/{COMP}/rules')
    assert not Path('kaggle-runs.csv').exists()


def test_a_quota_that_cannot_be_read_does_not_fail_the_push(stub):
    stub.fail['GetAcceleratorQuotaStatistics'] = (503, 'unavailable')
    r = run('kaggle', 'run', 'demo_scratch', *FAST)
    assert (r.exit_code == 0 and 'GPU quota unknown (Kaggle answered 503' in r.output
            and len(stub.kernels[KERNEL]) == 1), r.output
    assert len(Path('kaggle-runs.csv').read_text().splitlines()) == 2  # the header and the push


def error_after_progress(r, *needles):
    "Exit 2 with one error line that names the fix, after whatever progress went before it."
    errors = [line for line in r.output.splitlines() if line.startswith('paddy: error: ')]
    assert r.exit_code == 2 and len(errors) == 1 and 'Traceback' not in r.output, r.output
    for n in needles: assert n in errors[0]


def outputs(work: Path) -> dict[str, bytes]:
    return {p.relative_to(work).as_posix(): p.read_bytes() for p in sorted(work.rglob('*')) if p.is_file()}


def kaggle_log(*lines: str) -> str:
    "A log as Kaggle keeps a script's: JSON records of {stream_name, time, data}."
    return json.dumps([dict(stream_name='stdout', time=0.5 * k, data=line + '\n') for k, line in enumerate(lines)])


@pytest.mark.slow
def test_script_trains_here_then_pull_brings_its_runs_to_ensemble(stub, local, tmp_path):
    """Done when: the dry run's script, run against a fake /kaggle/input, trains; pull brings its runs; ensemble uses
    them."""
    assert run('kaggle', 'run', 'demo_scratch', '--repeat', '2', *FAST, '--dry-run', 'out').exit_code == 0
    inp, work = tmp_path / 'kaggle' / 'input', tmp_path / 'kaggle' / 'working'
    p = rehearse('out', inp, work, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    jsons = sorted((work / 'models').glob('*.json'))
    assert len(jsons) == 2
    assert len(list((work / 'preds').glob('*.npz'))) == 2
    assert len(list((work / 'models').glob('*.pkl'))) == 2
    manifest = json.loads(next(Path('out/dataset').glob('paddy-*.json')).read_text())
    for j in jsons:  # trained by the wheel's paddy, which knows its commit only from the wheel
        meta = json.loads(j.read_text())
        assert meta['git_commit'] == manifest['git_commit']
        assert meta['data'] == str((inp / 'competitions' / COMP).resolve())
        assert meta['experiment']['epochs'] == 1
    assert json.loads((work / 'paddy-kaggle-run.json').read_text())['exit_code'] == 0

    shutil.rmtree(inp)  # the runs' data folder was on Kaggle, not here
    stub.kernels[KERNEL], stub.state[KERNEL] = [{}], ('COMPLETE', None)
    stub.outputs[KERNEL], stub.logs[KERNEL] = outputs(work), kaggle_log('sweep finished')
    r = run('kaggle', 'pull', KERNEL)
    assert r.exit_code == 0, r.output
    runs = sorted(j.stem for j in jsons)
    assert sorted(p.stem for p in Path('models').glob('*.json')) == runs
    assert sorted(p.stem for p in Path('preds').glob('*.npz')) == runs
    assert not list(Path('models').glob('*.pkl')), 'the large models come only with --models'
    logs = Path('sweeps/paddy-demo-scratch-v1')  # the kernel's current version, asked for since none was given
    assert (logs / 'kernel.log').read_text().strip() == 'sweep finished'
    assert len(list(logs.glob('kaggle-*/demo_scratch-*.log'))) == 2

    r = run('ensemble', '--name', 'mixed')
    assert r.exit_code == 0, r.output
    assert 'taking the 0 runs predicted on' in r.output and 'and 2 predicted on its copy elsewhere' in r.output
    sub = pd.read_csv('submissions/mixed.csv', dtype=str)
    assert sub.image_id.tolist() == pd.read_csv(local / 'sample_submission.csv', dtype=str).image_id.tolist()
    assert sorted(json.loads(Path('submissions/mixed.json').read_text())['runs']) == runs
    assert run('results').exit_code == 0 and all(x in run('results').output for x in runs)

    before = {p: p.read_bytes() for p in Path('models').iterdir()}
    r = run('kaggle', 'pull', KERNEL, '--models')
    assert r.exit_code == 0 and 'pulled 0 new runs' in r.output
    assert {p: p.read_bytes() for p in Path('models').iterdir() if p.suffix == '.json'} == before
    assert sorted(p.stem for p in Path('models').glob('*.pkl')) == runs


def rehearse(dry: str, inp: Path, work: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run the dry run `dry`'s kernel script as Kaggle would: its inputs where notebooks of 2026 find them, paddy not
    importable when it starts (it must find them with its own code), the wheel installed alone."""
    shutil.rmtree(inp, ignore_errors=True)
    make_comp(inp / 'competitions' / COMP)
    shutil.copytree(Path(dry) / 'dataset', inp / 'datasets' / 'tester' / 'paddy-lib')
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PADDY_KAGGLE_INPUT=str(inp), PADDY_KAGGLE_TARGET=str(tmp_path / 'site'), PADDY_WORKERS='0',
               CUDA_VISIBLE_DEVICES='')
    bare = "import sys; sys.modules['paddy'] = None; exec(compile(open(sys.argv[1]).read(), sys.argv[1], 'exec'))"
    return subprocess.run([sys.executable, '-c', bare, (Path(dry) / 'kernel' / 'paddy_kaggle.py').resolve()], cwd=work,
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_session_limit_skips_what_would_not_fit_and_the_same_push_runs_the_rest(stub, local, tmp_path):
    """Done when: a rehearsal with a small session limit skips a run that would not fit, exits 0 and records it; pull
    brings the finished run and status names the skipped one; the same push again runs only the one skipped."""
    push = ('kaggle', 'run', 'demo_scratch', '--repeat', '2', *FAST)
    assert run(*push, '--hours', '0.0001', '--dry-run', 'out').exit_code == 0  # a second: one run, not two
    inp, work = tmp_path / 'kaggle' / 'input', tmp_path / 'kaggle' / 'working'
    p = rehearse('out', inp, work, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    record = json.loads((work / 'paddy-kaggle-run.json').read_text())
    assert (record['ran'], record['skipped'], record['exit_code']) == (['demo_scratch-1'], ['demo_scratch-2'], 0)

    stub.kernels[KERNEL], stub.state[KERNEL] = [{}], ('COMPLETE', None)
    stub.outputs[KERNEL], stub.logs[KERNEL] = outputs(work), kaggle_log('sweep ended')
    r = run('kaggle', 'status', KERNEL)
    assert r.exit_code == 0 and '1 runs finished; 1 skipped' in r.output and '(demo_scratch-2)' in r.output, r.output
    r = run('kaggle', 'pull', KERNEL)
    assert r.exit_code == 0 and '1 skipped' in r.output and len(list(Path('models').glob('*.json'))) == 1, r.output

    assert run(*push, '--dry-run', 'again').exit_code == 0  # the same push, with the whole session
    assert len(json.loads(next(Path('again/dataset').glob('paddy-*.json')).read_text())['finished']) == 1
    p = rehearse('again', inp, tmp_path / 'kaggle' / 'working-2', tmp_path)
    assert p.returncode == 0 and '2 runs, 1 already finished, 1 to go' in p.stdout, p.stdout + p.stderr
    record = json.loads((tmp_path / 'kaggle' / 'working-2' / 'paddy-kaggle-run.json').read_text())
    assert (record['ran'], record['skipped']) == (['demo_scratch-1', 'demo_scratch-2'], [])


def run_output(data: Path, run_name: str, seed=0, test_ids=None) -> dict[str, bytes]:
    "One finished run's .json and .npz as a kernel leaves them, predicted on Kaggle's copy of `data`."
    rng = np.random.default_rng(seed)
    ids = test_ids or pd.read_csv(data / 'sample_submission.csv', dtype=str).image_id.tolist()
    npz = Path(f'{run_name}.npz')
    save_preds(npz, run_name,
               dict(vocab=np.array(['cat', 'dog', 'fish']), data=np.array(f'/kaggle/input/{COMP}'),
                    valid_ids=np.array(['cat000.jpg']),
                                   valid_probs=rng.dirichlet(np.ones(3), 1), valid_targets=np.array([0]),
                    test_ids=np.array(ids),
                                   test_probs=rng.dirichlet(np.ones(3), len(ids))))
    out = {f'preds/{run_name}.npz': npz.read_bytes(),
           f'models/{run_name}.json': json.dumps(dict(run=run_name, error_rate=0.5)).encode()}
    npz.unlink()
    return out


def test_status_is_one_line_and_a_failed_kernel_shows_its_log_tail(stub, local):
    one_line_error(run('kaggle', 'status'), 'kaggle-runs.csv', 'paddy kaggle status you/')
    assert run('kaggle', 'run', 'demo_scratch', *FAST).exit_code == 0
    r = run('kaggle', 'status')
    assert r.exit_code == 0 and r.output.strip() == f'{KERNEL}/1: queued; ask again later'
    assert (dict(stub.calls)['GetKernelSessionStatus'] == {'userName': 'tester', 'kernelSlug': 'paddy-demo-scratch',
                                                           'versionLabel': 'v1'})
    one_line_error(run('kaggle', 'pull'), 'is queued', 'paddy kaggle status')

    stub.state[KERNEL] = ('ERROR', 'Your notebook hit an error')
    stub.outputs[KERNEL] = run_output(local, 'demo_scratch-a1b2c3')  # one run finished before the failure
    stub.logs[KERNEL] = kaggle_log(*[f'line {k}' for k in range(30)],
                                   'paddy: error: 1 of 2 runs failed (demo_scratch-2)')
    r = run('kaggle', 'status')
    assert r.output.strip() == f'{KERNEL}/1: error (Your notebook hit an error); see its log with `paddy kaggle pull`'
    r = run('kaggle', 'pull')
    error_after_progress(r, 'ended error', 'paddy kaggle run')
    assert '  | paddy: error: 1 of 2 runs failed (demo_scratch-2)' in r.output
    assert '  | line 11' in r.output
    assert 'line 10\n' not in r.output
    assert Path('models/demo_scratch-a1b2c3.json').is_file() and Path('preds/demo_scratch-a1b2c3.npz').is_file()
    one_line_error(run('kaggle', 'status', 'tester/nobody-here'), 'has no kernel tester/nobody-here', '404')


def test_a_push_past_the_gpu_session_limit_is_one_line(stub):
    stub.push_error = 'Maximum batch GPU session count of 2 reached.'
    r = run('kaggle', 'run', 'demo_scratch', *FAST)
    error_after_progress(r, 'Maximum batch GPU session count of 2 reached', 'wait for a running kernel to end')
    assert not Path('kaggle-runs.csv').exists()


def test_a_kernel_stopped_at_its_limit_is_finished_and_pulled(stub, local):
    "Kaggle ends a session at its time limit as CANCEL_ACKNOWLEDGED, not ERROR: a finished state, with output to bring."
    assert run('kaggle', 'run', 'demo_scratch', *FAST).exit_code == 0
    stub.state[KERNEL] = ('CANCEL_ACKNOWLEDGED', None)
    stub.outputs[KERNEL] = run_output(local, 'demo_scratch-c0ffee')
    r = run('kaggle', 'status')
    assert r.exit_code == 0 and "cancel_acknowledged; it was cancelled or reached Kaggle's time limit" in r.output
    r = run('kaggle', 'pull')
    error_after_progress(r, "was cancelled or reached Kaggle's time limit", 'the same `paddy kaggle run`')
    assert Path('models/demo_scratch-c0ffee.json').is_file() and Path('preds/demo_scratch-c0ffee.npz').is_file()


def test_pull_never_overwrites_and_checks_the_test_ids(stub, local):
    stub.kernels[KERNEL], stub.state[KERNEL] = [{}], ('COMPLETE', None)
    stub.outputs[KERNEL] = {**run_output(local, 'demo_scratch-aaaaaa'), **run_output(local, 'demo_scratch-bbbbbb', 1)}
    Path('models').mkdir()
    Path('models/demo_scratch-bbbbbb.json').write_text('mine')
    one_line_error(run('kaggle', 'pull', KERNEL), 'models/demo_scratch-bbbbbb.json exists with other contents',
                   'nothing was pulled')
    assert Path('models/demo_scratch-bbbbbb.json').read_text() == 'mine'
    assert os.listdir('models') == ['demo_scratch-bbbbbb.json']
    assert not Path('preds').exists()

    stub.outputs[KERNEL] = run_output(local, 'demo_scratch-cccccc', test_ids=['x.jpg'])
    one_line_error(run('kaggle', 'pull', KERNEL), "demo_scratch-cccccc's predictions are not of the test ids")
    assert not Path('preds').exists()


def test_each_version_pulls_its_own_logs(stub, local):
    """Without a version, pull takes the kernel's current one: a later version's logs go beside the earlier ones, not
    over them."""
    stub.kernels[KERNEL], stub.state[KERNEL] = [{}], ('COMPLETE', None)
    stub.outputs[KERNEL] = {**run_output(local, 'demo_scratch-aaaaaa'), 'sweeps/sweep-1/demo_scratch-1.log': b'first'}
    assert run('kaggle', 'pull', KERNEL).exit_code == 0
    stub.kernels[KERNEL].append({})
    stub.outputs[KERNEL] = {**run_output(local, 'demo_scratch-bbbbbb'), 'sweeps/sweep-1/demo_scratch-1.log': b'second'}
    r = run('kaggle', 'pull', KERNEL)
    assert r.exit_code == 0 and 'pulled 1 new run from' in r.output, r.output
    assert Path('sweeps/paddy-demo-scratch-v1/sweep-1/demo_scratch-1.log').read_text() == 'first'
    assert Path('sweeps/paddy-demo-scratch-v2/sweep-1/demo_scratch-1.log').read_text() == 'second'
    assert sorted(p.name for p in Path('preds').iterdir()) == ['demo_scratch-aaaaaa.npz', 'demo_scratch-bbbbbb.npz']
    assert [c[1].get('versionLabel') for c in stub.calls if c[0] == 'ListKernelSessionOutput'] == ['v1', 'v2']


def test_on_kaggle_pip_keeps_the_images_torch(monkeypatch, tmp_path):
    """Outside a rehearsal the wheel installs with its dependencies, constrained to the torch and torchvision already
    there."""
    from paddy.kaggle import notebook
    calls = []
    monkeypatch.setattr(notebook, 'version', lambda n: {'torch': '2.6.0+cu124', 'torchvision': '0.21.0+cu124'}[n])
    monkeypatch.setattr(notebook.subprocess, 'call', lambda cmd,
                        env: calls.append((cmd, Path(cmd[cmd.index('-c') + 1]).read_text())) or 0)
    notebook.install(tmp_path / 'paddy-0.1.0-py3-none-any.whl', None)
    (cmd, pins), = calls
    assert cmd[1:5] == ['-m', 'pip', 'install', '-q']
    assert '--no-deps' not in cmd
    assert cmd[-1].endswith('paddy-0.1.0-py3-none-any.whl')
    assert pins == 'torch==2.6.0+cu124\ntorchvision==0.21.0+cu124\n'
    monkeypatch.setattr(notebook.subprocess, 'call', lambda cmd, env: 1)
    with pytest.raises(SystemExit,
                       match=r"paddy: error: pip could not install .*accept the image's torch==2.6.0\+cu124 "
                             r"and torchvision"):
        notebook.install(tmp_path / 'paddy-0.1.0-py3-none-any.whl', None)


def test_a_dry_run_needs_no_credentials_and_prints_no_banner(monkeypatch):
    for var in ('KAGGLE_USERNAME', 'KAGGLE_KEY'): monkeypatch.delenv(var)
    r = run('kaggle', 'run', 'demo_scratch', *FAST, '--dry-run', 'out')
    assert r.exit_code == 0, r.output
    assert json.loads(Path('out/kernel/kernel-metadata.json').read_text())['id'] == 'you/paddy-demo-scratch'
    assert "belong to 'you'" in r.output and 'kaggle.json' not in r.output and len(r.output.splitlines()) == 3


def test_every_kernel_state_kagglesdk_knows_has_its_words():
    from kagglesdk.kernels.types.kernels_enums import KernelWorkerStatus
    from paddy.kaggle.remote import HINTS
    assert {s.name.lower() for s in KernelWorkerStatus} == set(HINTS)


PLAYBOOK = """candidates = ['{spec}', ('{spec}', ['lr=0.02'])]
screen_size = 24
screen_sets = ['item_size=32', 'aug_size=32', 'bs=8']
screen_epochs = 1
top = 1
final_sets = ['item_size=32', 'aug_size=32', 'bs=8']
final_epochs = 1
"""


@pytest.mark.slow
def test_a_playbook_runs_in_the_kernel_and_the_next_push_goes_on_from_what_was_pulled(stub, local, tmp_path,
                                                                                      tiny_spec):
    """`paddy kaggle run --playbook`: the kernel runs the whole playbook and pull brings its state, runs and
    submission; a session that ended after the final sweep is pushed again and goes on at the ensemble, training
    nothing."""
    from paddy.playbook.state import STAGES
    Path('playbooks').mkdir()
    Path('playbooks/tinyk.py').write_text(PLAYBOOK.format(spec=tiny_spec))
    one_line_error(run('kaggle', 'run', 'demo_scratch', '--playbook', 'tinyk', '--dry-run', 'x'), 'give no EXP')
    one_line_error(run('kaggle', 'run', '--playbook', 'tinyk', '--set', 'epochs=2', '--dry-run', 'x'), 'give no EXP')
    one_line_error(run('kaggle', 'run', '--playbook', 'tinky', '--dry-run', 'x'), 'did you mean tinyk')
    assert not Path('x').exists()
    r = run('kaggle', 'run', '--playbook', 'tinyk', '--hours', '1', '--dry-run', 'out')
    assert r.exit_code == 0, r.output
    manifest = json.loads(next(Path('out/dataset').glob('paddy-*.json')).read_text())
    name = manifest['run']
    assert (manifest['playbook'], manifest['experiments'], manifest['finished'], manifest['state']) == (
        'tinyk', ['tiny'], [], [])
    flat = Path('out/dataset/playbook-tinyk.py').read_text()
    assert "candidates = ['tiny', ('tiny', ['lr=0.02'])]" in flat and str(tiny_spec) not in flat  # no path of here
    code = Path('out/kernel/paddy_kaggle.py').read_text()
    assert f"'playbook': 'tinyk', 'run': '{name}'" in code and f'paddy playbook tinyk --name {name}' in code

    inp, work = tmp_path / 'kaggle' / 'input', tmp_path / 'kaggle' / 'working'
    p = rehearse('out', inp, work, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    record = json.loads((work / 'paddy-kaggle-run.json').read_text())
    assert (record['playbook'], record['run'], record['stages']) == ('tinyk', name, list(STAGES))
    assert len(record['ran']) == 3 and record['skipped'] == []  # two screening runs, one final
    assert (work / 'submissions' / f'{name}.csv').is_file()

    shutil.rmtree(inp)
    kernel_ = 'tester/paddy-playbook-tinyk'
    stub.kernels[kernel_], stub.state[kernel_] = [{}], ('COMPLETE', None)
    stub.outputs[kernel_], stub.logs[kernel_] = outputs(work), kaggle_log('playbook done')
    r = run('kaggle', 'pull', kernel_)
    assert r.exit_code == 0 and f'playbook run {name} did check, shrink' in r.output, r.output
    assert not Path(f'playbooks/{name}/lock').exists()
    assert Path(f'playbooks/{name}/state.json').read_bytes() == (work / 'playbooks' / name / 'state.json').read_bytes()
    assert len(list(Path('models').glob('*.json'))) == 3 and not list(Path('models').glob('*.pkl'))
    r = run('check-submission', f'submissions/{name}.csv', '--data', str(local))
    assert r.exit_code == 0 and 'ready to submit' in r.output, r.output
    r = run('playbook', 'tinyk', '--name', name, '--status')
    assert r.exit_code == 0 and all(f'{s:<9} done' in r.output for s in STAGES), r.output

    # as if that session had reached its limit after the final sweep: its ensemble, submission and reports not made
    state = json.loads(Path(f'playbooks/{name}/state.json').read_text())
    for s in ('ensemble', 'submit'): del state['stages'][s]
    Path(f'playbooks/{name}/state.json').write_text(json.dumps(state))
    for f in [*Path('submissions').iterdir(), Path('reports')]: shutil.rmtree(f) if f.is_dir() else f.unlink()
    before = {p.name: p.read_bytes() for p in Path('models').iterdir()}
    assert run('kaggle', 'run', '--playbook', 'tinyk', '--dry-run', 'again').exit_code == 0
    again = json.loads(next(Path('again/dataset').glob('paddy-*.json')).read_text())
    assert again['run'] == name and sorted(again['finished']) == sorted(p.stem for p in Path('models').glob('*.json'))
    assert again['preds'] == sorted(again['finished']) and 'state.json' in again['state']
    work2 = tmp_path / 'kaggle' / 'working-2'
    p = rehearse('again', inp, work2, tmp_path)
    assert p.returncode == 0 and 'continuing at stage 6, ensemble' in p.stdout, p.stdout + p.stderr
    assert not list((work2 / 'models').glob('*.pkl')), 'nothing trained again'
    assert json.loads((work2 / 'paddy-kaggle-run.json').read_text())['stages'] == list(STAGES)

    stub.kernels[kernel_].append({})
    stub.outputs[kernel_] = outputs(work2)
    r = run('kaggle', 'pull', kernel_)
    assert r.exit_code == 0 and 'pulled 0 new runs' in r.output, r.output
    assert {p.name: p.read_bytes() for p in Path('models').iterdir()} == before  # what finished is unchanged
    assert 'ensemble' in json.loads(Path(f'playbooks/{name}/state.json').read_text())['stages']  # replaced: it went on
    assert Path(f'submissions/{name}.csv').is_file()

    Path(f'playbooks/{name}/state.json').write_text(json.dumps(dict(state, args=dict(state['args'], data='/else'))))
    one_line_error(run('kaggle', 'pull', kernel_), f'playbooks/{name}/state.json exists with other contents')


def test_a_pull_killed_mid_copy_leaves_no_half_file_and_pulls_again(stub, local):
    "SIGKILL half-way through copying a run's .json: the run is not there (no half .json), and the next pull brings it."
    from test_faults import killed_midway
    stub.kernels[KERNEL], stub.state[KERNEL] = [{}], ('COMPLETE', None)
    stub.outputs[KERNEL] = {**run_output(local, 'demo_scratch-aaaaaa'), **run_output(local, 'demo_scratch-bbbbbb', 1)}
    killed_midway('shutil', 'copyfile', "str(args[0]).endswith('bbbbbb.json')",
                  "open(args[1], 'wb').write(open(args[0], 'rb').read()[:10])", 'kaggle', 'pull', KERNEL)
    assert Path('models/demo_scratch-aaaaaa.json').is_file() and not Path('models/demo_scratch-bbbbbb.json').exists()
    assert [p.name for p in Path('models').iterdir() if not p.name.startswith('.')] == ['demo_scratch-aaaaaa.json']
    r = run('kaggle', 'pull', KERNEL)
    assert r.exit_code == 0 and 'pulled 1 new run from' in r.output, r.output
    assert json.loads(Path('models/demo_scratch-bbbbbb.json').read_text())['run'] == 'demo_scratch-bbbbbb'
