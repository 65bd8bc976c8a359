"""A run killed mid-way leaves no model, says how to go on, and `paddy train --resume RUN` finishes it as it was."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paddy.cli import app
from paddy.data import read_train, valid_ids
from paddy.errors import PaddyError

runner = CliRunner()


def state_epochs(models: Path) -> int:
    import torch
    pth = list(models.glob('*.state/model.pth'))
    if not pth: return 0
    try: return torch.load(pth[0], weights_only=True)['epochs_done']
    except Exception: return 0  # caught between writes of the temporary file: try again


@pytest.mark.serial
@pytest.mark.slow
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
    kept = json.loads(Path(f'models/{run}.state/history.json').read_text())['epochs']
    assert [h['epoch'] for h in kept] == list(range(done))  # a stopped run keeps its epochs' rows
    r = runner.invoke(app, ['train', '--resume', run])
    assert r.exit_code == 0, r.output
    assert f'{run}: resuming after {done} of 40 epochs' in r.output
    meta = json.loads(Path(f'models/{run}.json').read_text())
    assert meta['resumed'] is True
    assert meta['resumed_from_epoch'] == done
    assert meta['run'] == run
    assert meta['experiment']['epochs'] == 40
    assert [h['epoch'] for h in meta['history']] == list(range(40)) and meta['history'][:done] == kept
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


@pytest.mark.serial
@pytest.mark.slow
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


def tiny_run(spec: Path, comp: Path, *sets):
    from paddy.spec import load
    from paddy.train import Settings, train
    return train(load(str(spec), ['epochs=3', *sets]), Settings(data=str(comp)))


def stop_after_the_row(epoch: int):
    "A callback that stops the fit just after the recorder has printed epoch `epoch`'s row, as a Ctrl-C would."
    from fastai.callback.core import Callback
    from fastai.learner import Recorder

    class Stop(Callback):
        order = Recorder.order + 1
        def after_epoch(self):
            if self.epoch == epoch: raise KeyboardInterrupt
    return Stop()


def test_an_epoch_whose_row_was_printed_is_saved(comp, tiny_spec, monkeypatch):
    import paddy.train.trainer as R
    real = R.learner
    monkeypatch.setattr(R, 'learner', lambda *a, **k: real(*a, **k).add_cb(stop_after_the_row(0)))
    with pytest.raises(KeyboardInterrupt): tiny_run(tiny_spec, comp)
    assert state_epochs(Path('models')) == 1  # the row of epoch 0 was on the screen, so epoch 0 is kept


def test_a_stop_during_the_save_waits_for_it(comp, tiny_spec, monkeypatch):
    import torch
    # Ctrl-C's own handler, whatever started the suite: a shell's background job (`nohup make test &`) starts with
    # SIGINT ignored, and a signal ignored before the save is rightly ignored after it
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    real, saves = torch.save, []
    def save(obj, f, *a, **k):  # Ctrl-C arrives half-way through writing the checkpoint
        if isinstance(obj, dict) and 'epochs_done' in obj: os.kill(os.getpid(), signal.SIGINT)
        saves.append(f)
        return real(obj, f, *a, **k)
    monkeypatch.setattr(torch, 'save', save)
    try:
        with pytest.raises(KeyboardInterrupt): tiny_run(tiny_spec, comp)
    finally: signal.signal(signal.SIGINT, before)
    assert len(saves) == 1 and state_epochs(Path('models')) == 1


def nan_losses(monkeypatch):
    "Make every Learner that training builds compute NaN losses, as a rate far too high would."
    import paddy.train.trainer as R
    real = R.learner
    def nan_loss(*a, **k):
        learn = real(*a, **k)
        loss = learn.loss_func
        learn.loss_func = lambda out, *ys: loss(out, *ys) * float('nan')
        return learn
    monkeypatch.setattr(R, 'learner', nan_loss)


def test_a_diverged_run_stops_says_so_and_keeps_nothing(comp, tiny_spec, monkeypatch):
    nan_losses(monkeypatch)
    with pytest.raises(PaddyError, match=r'the loss became nan, nan in epoch 0, so training stopped and nothing was '
                                         r'exported: lower lr'):
        tiny_run(tiny_spec, comp)
    assert not list(Path('models').glob('*')) and not Path('preds').exists()


def test_a_full_disk_is_one_line_and_leaves_no_state(comp, tiny_spec, monkeypatch):
    import torch
    def full(obj, f, *a, **k): raise RuntimeError('[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0')
    monkeypatch.setattr(torch, 'save', full)
    r = runner.invoke(app, ['train', str(tiny_spec), '--data', str(comp)])
    assert r.exit_code == 2 and 'Traceback' not in r.output, r.output
    (line,) = [l for l in r.output.splitlines() if l.startswith('paddy')]  # the epoch table aside, one line
    assert line.startswith('paddy: error: models/tiny-') and 'model.pth: writing failed' in line and 'disk full' in line
    assert not list(Path('models').glob('*'))  # no epoch finished: nothing to go on from


def test_a_folder_paddy_may_not_write_is_one_line(comp, tiny_spec, monkeypatch):
    "Root ignores file modes, so a read-only models/ is what the kernel's answer to it would be."
    import paddy.train.resume as resume
    def refused(run, ws, info): raise PermissionError(13, 'Permission denied', str(ws.state(run)))
    monkeypatch.setattr(resume, 'begin', refused)
    r = runner.invoke(app, ['train', str(tiny_spec), '--data', str(comp)])
    assert r.exit_code == 2 and 'Traceback' not in r.output, r.output
    (line,) = [l for l in r.output.splitlines() if l.startswith('paddy')]
    assert line.startswith('paddy: error: models/tiny-') and 'Permission denied: paddy may not write there' in line


@pytest.mark.serial
@pytest.mark.slow
def test_a_stop_sent_to_the_whole_group_is_one_line(comp, tiny_spec):
    "`timeout` and schedulers send SIGTERM to every process of the group, the loader workers too."
    cmd = [sys.executable, '-m', 'paddy', 'train', str(tiny_spec), '--data', str(comp), '--set', 'epochs=40']
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env={**os.environ, 'PYTHONUNBUFFERED': '1', 'PADDY_WORKERS': '2'})
    t = time.time()
    while state_epochs(Path('models')) < 1 and p.poll() is None and time.time() - t < 120: time.sleep(0.02)
    os.killpg(p.pid, signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130 and 'Traceback' not in err, err
    assert [l for l in err.splitlines() if l.startswith('paddy')][0].endswith('goes on from there')


def test_a_run_stopped_and_resumed_ends_as_an_unbroken_one(comp, tiny_spec, monkeypatch):
    "Same training seed, on CPU: the resumed run's weights and predictions are the unbroken run's, bit for bit."
    import numpy as np
    import torch
    from paddy.predict import load_model, load_preds
    import paddy.train.trainer as R
    unbroken = tiny_run(tiny_spec, comp, 'train_seed=5', 'mixup=0.4')  # MixUp: numpy's and python's draws too
    real = R.learner
    monkeypatch.setattr(R, 'learner', lambda *a, **k: real(*a, **k).add_cb(stop_after_the_row(1)))
    with pytest.raises(KeyboardInterrupt): tiny_run(tiny_spec, comp, 'train_seed=5', 'mixup=0.4')
    monkeypatch.setattr(R, 'learner', real)
    (run,) = [p.name.removesuffix('.state') for p in Path('models').glob('*.state')]
    torch.manual_seed(123)  # whatever this process drew meanwhile, the resume draws what the unbroken run drew
    r = runner.invoke(app, ['train', '--resume', run, '--data', str(comp)])
    assert r.exit_code == 0, r.output
    a, b = (load_model(Path(f'models/{n}.pkl'), ours=True).model.state_dict() for n in (unbroken['run'], run))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pa, pb = (load_preds(Path(f'preds/{n}.npz')) for n in (unbroken['run'], run))
    assert np.array_equal(pa['valid_probs'], pb['valid_probs']) and np.array_equal(pa['test_probs'], pb['test_probs'])
    hist = json.loads(Path(f'models/{run}.json').read_text())['history']
    assert [h['epoch'] for h in hist] == [0, 1, 2]


def test_a_checkpoint_that_does_not_fit_its_model_is_one_line(tmp_path):
    "Another model's weights in a run's state: the damaged-file line, not a TypeError (resume_hint took two arguments)."
    import torch, torch.nn as nn
    from types import SimpleNamespace
    from paddy.files import Damaged
    from paddy.train.resume import restore
    pth = tmp_path / 'models' / 'tiny-3f9a1c.state' / 'model.pth'
    pth.parent.mkdir(parents=True)
    torch.save(dict(model=nn.Linear(4, 4).state_dict(), opt={}, epochs_done=1), pth)
    with pytest.raises(Damaged) as e: restore(SimpleNamespace(model=nn.Linear(2, 3), opt=None, cbs=[]), pth)
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and str(pth) in msg and 'paddy train tiny' in msg, msg
