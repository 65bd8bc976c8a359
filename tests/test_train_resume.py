"""A run killed mid-way leaves no model, says how to go on, and `paddy train --resume RUN` finishes it as it was."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

from typer.testing import CliRunner

from paddy.cli import app
from paddy.data import read_train, valid_ids

runner = CliRunner()


def state_epochs(models: Path) -> int:
    import torch
    pth = list(models.glob('*.state/model.pth'))
    if not pth: return 0
    try: return torch.load(pth[0], weights_only=True)['epochs_done']
    except Exception: return 0  # caught between writes of the temporary file: try again


def test_a_killed_run_resumes_and_finishes(comp, tiny_spec):
    cmd = [sys.executable, '-m', 'paddy', 'train', str(tiny_spec), '--data', str(comp), '--set', 'epochs=40']
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, 'PYTHONUNBUFFERED': '1'})
    t = time.time()
    while state_epochs(Path('models')) < 2 and p.poll() is None and time.time() - t < 120: time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, (out, err)
    run = next(Path('models').glob('*.state')).name.removesuffix('.state')
    done = state_epochs(Path('models'))
    assert 2 <= done < 40
    assert f'paddy: {run} stopped after {done} finished epochs; `paddy train --resume {run}` goes on from there' in err
    assert not list(Path('models').glob('*.pkl'))
    assert not list(Path('models').glob(f'{run}.json'))
    assert not Path('preds').exists()
    r = runner.invoke(app, ['train', '--resume', run])
    assert r.exit_code == 0, r.output
    assert f'{run}: resuming after {done} of 40 epochs' in r.output
    meta = json.loads(Path(f'models/{run}.json').read_text())
    assert meta['resumed'] is True
    assert meta['resumed_from_epoch'] == done
    assert meta['run'] == run
    assert meta['experiment']['epochs'] == 40
    assert meta['valid_ids'] == valid_ids(read_train(comp).image_id, 42)  # the same split
    assert Path(f'models/{run}.pkl').exists() and Path(f'preds/{run}.npz').exists()
    assert not list(Path('models').glob('*.state'))  # a finished run keeps no state
    rows = [l for l in r.output.splitlines() if l[:1].isdigit() and len(l.split()) == 5]
    # the epochs left, and no empty rows for the others
    assert ([int(l.split()[0]) for l in rows] == list(range(done, 40)))
    r = runner.invoke(app, ['train', '--resume', run])
    assert r.exit_code == 2 and 'it finished; its model is models/' in r.output


def test_resume_refuses_what_it_cannot_go_on_with(tiny_spec):
    for args, needle in ((['train'], 'one of the two'), (['train', str(tiny_spec), '--resume',
                                                          'x-1'], 'one of the two'),
                         (['train', '--resume',
                           '../x'], 'give a run name'), (['train', '--resume', 'nope-123456'], 'no saved state'),
                         (['train', '--resume', 'nope-123456', '--set', 'epochs=1'], 'drop --set')):
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and needle in r.output and r.output.count('\n') == 1, (args, r.output)


def test_a_stopped_sweep_resumes_its_stopped_run(comp, tiny_spec):
    """Ctrl-C stops a sweep's running job with its state saved; the same sweep command then resumes that run, not a new
    one."""
    cmd = [sys.executable, '-m', 'paddy', 'sweep', str(tiny_spec), '--data', str(comp), '--set', 'epochs=30', '--name',
           's']
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env={**os.environ, 'PYTHONUNBUFFERED': '1'})
    t = time.time()
    while state_epochs(Path('models')) < 2 and p.poll() is None and time.time() - t < 120: time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    out = p.communicate(timeout=60)[0]
    assert p.returncode == 130, out
    run = next(Path('models').glob('*.state')).name.removesuffix('.state')
    done = state_epochs(Path('models'))
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert '1 to go (1 stopped, to resume)' in again.stdout
    assert f'resume {Path(tiny_spec).stem}-1 ({run}) on CPU' in again.stdout
    meta = json.loads(Path(f'models/{run}.json').read_text())
    assert meta['resumed'] is True and meta['resumed_from_epoch'] == done and meta['sweep'] == 's/tiny-1'
    assert [p.stem for p in Path('models').glob('*.json')] == [run] and not list(Path('models').glob('*.state'))
    log = Path(f'sweeps/s/{Path(tiny_spec).stem}-1.log').read_text()
    assert f'train --resume {run} --data {comp.resolve()}' in log
