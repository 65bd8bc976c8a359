"""Faults a machine meets rather than a user: processes killed outright (SIGKILL), the same work started twice, a
damaged checkpoint. Real processes, each killed by its own id; and what had finished before is unchanged, byte for
byte, after each."""
import hashlib, json, os, shutil, signal, subprocess, sys, textwrap, time
from pathlib import Path

import pytest

from conftest import TINY, make_comp
from test_cli import one_line_error, run

# every test here trains in subprocesses (left out of make test-fast) and kills them at chosen moments (run alone)
pytestmark = [pytest.mark.slow, pytest.mark.serial]

ROOT = Path(__file__).resolve().parent.parent
SLOW = {**os.environ, 'PYTHONUNBUFFERED': '1'}


def paddy(*args) -> list[str]: return [sys.executable, '-m', 'paddy', *map(str, args)]


def digest(*tops) -> dict[str, str]:
    "sha256 of every finished artefact: models/ (not the states of unfinished runs), preds/ and submissions/."
    out = {}
    for top in tops or ('models', 'preds', 'submissions'):
        for f in sorted(Path(top).rglob('*')):
            if f.is_file() and not any(p.endswith('.state') for p in f.parts):
                out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def wait_for(what, timeout: float = 120, proc=None, every: float = 0.05):
    "Poll `what()` until it is true; fail when `timeout` passes or `proc` ends first."
    t = time.time()
    while time.time() - t < timeout:
        got = what()
        if got: return got
        if proc is not None and proc.poll() is not None:
            pytest.fail(f'the process ended (exit {proc.returncode}) first:\n' + (proc.stdout.read() if proc.stdout
                                                                                  else ''))
        time.sleep(every)
    pytest.fail(f'timed out after {timeout} s waiting for {what}')


def alive(pid: int) -> bool:
    "Whether `pid` runs: a zombie (dead, not yet reaped by whoever adopted it) does not."
    try: return Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0] != 'Z'
    except (FileNotFoundError, IndexError): return False


def children(pid: int) -> list[int]:
    "The processes whose parent is `pid`, from /proc."
    out = []
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try: fields = stat.read_text().rsplit(')', 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError): continue
        if int(fields[1]) == pid: out.append(int(stat.parent.name))
    return out


def epochs_saved(models: Path = Path('models')) -> int:
    import torch
    pth = list(models.glob('*.state/model.pth'))
    try: return torch.load(pth[0], weights_only=True)['epochs_done'] if pth else 0
    except Exception: return 0  # caught as it is replaced


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
    "A finished run and its submission, made once: each test copies them in and checks they are never touched."
    root = tmp_path_factory.mktemp('finished')
    comp = make_comp(root / 'comp')
    (root / 'tiny.py').write_text(TINY)
    for cmd in (paddy('train', root / 'tiny.py', '--data', comp), paddy('ensemble', '--data', comp, '--name', 'sub')):
        r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
    return root


@pytest.fixture
def project(finished):
    "A project folder holding the finished run and submission, and the tiny experiment; the data folder."
    for top in ('models', 'preds', 'submissions'): shutil.copytree(finished / top, top)
    shutil.copy(finished / 'tiny.py', 'tiny.py')
    before = digest()
    yield finished / 'comp'  # where the finished run was predicted, so an ensemble here takes it in
    after = digest()
    assert {f: after.get(f) for f in before} == before, 'a finished artefact was lost or changed'


def reap(*procs):
    "Kill, by their ids, whatever a failed test left running."
    for p in procs:
        if isinstance(p, int):
            if alive(p): os.kill(p, signal.SIGKILL)
        elif p.poll() is None: p.kill(); p.wait()


def test_a_sweep_started_twice_at_once_trains_each_job_once(project):
    cmd = paddy('sweep', 'tiny.py', '--repeat', '2', '--name', 'twice', '--data', project, '--set', 'epochs=3')
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=SLOW)
    try:
        wait_for(lambda: Path('sweeps/twice/sweep.json').exists(), proc=first)
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        out = first.communicate(timeout=300)[0]
    finally: reap(first)
    assert first.returncode == 0, out
    assert second.returncode == 2 and second.stderr.count('\n') == 1, second.stdout + second.stderr
    assert f'sweep twice is running already, in process {first.pid} (`paddy sweep' in second.stderr, second.stderr
    assert 'another --name' in second.stderr
    runs = [json.loads(f.read_text()) for f in Path('models').glob('*.json')]
    assert sorted(r['sweep'] for r in runs if r.get('sweep')) == ['twice/tiny-1', 'twice/tiny-2']
    assert not Path('sweeps/twice/lock').exists()  # let go as the sweep ended


def test_a_sweep_killed_hard_stops_its_run_and_nobody_trains_it_twice(project):
    cmd = paddy('sweep', 'tiny.py', '--name', 'hard', '--data', project, '--set', 'epochs=2000')
    sweep = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=SLOW)
    kids, holders = [], []
    try:
        wait_for(lambda: epochs_saved() >= 1, proc=sweep)
        kids = children(sweep.pid)
        assert len(kids) == 1, kids
        os.kill(sweep.pid, signal.SIGKILL)
        sweep.wait(timeout=30)
        t = time.time()
        while alive(kids[0]) and time.time() - t < 30: time.sleep(0.1)
        # its run died with it, by SIGTERM, which keeps its last finished epoch to resume from
        assert not alive(kids[0]), 'the run trains on as an orphan of the killed sweep'
        run_ = next(Path('models').glob('*.state')).name.removesuffix('.state')
        done = epochs_saved()
        assert done >= 1 and not Path(f'models/{run_}.pkl').exists()
        assert f"{run_} stopped after {done} finished epochs" in Path('sweeps/hard/tiny-1.log').read_text()

        # one owner per run: a resume by hand holds it, and a second resume, or the sweep again, leaves it alone
        one = subprocess.Popen(paddy('train', '--resume', run_), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=SLOW)
        holders.append(one)
        lock = Path(f'models/{run_}.state/lock')
        wait_for(lambda: lock.exists() and f'"pid": {one.pid}' in lock.read_text(), proc=one)
        two = subprocess.run(paddy('train', '--resume', run_), capture_output=True, text=True, timeout=120)
        assert two.returncode == 2 and two.stderr.count('\n') == 1, two.stdout + two.stderr
        assert f'paddy: error: run {run_} is being trained by process {one.pid} (`paddy train --resume {run_}`' \
               in two.stderr, two.stderr
        again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stdout + again.stderr
        assert f'skip tiny-1: {run_} is being trained by process {one.pid}' in again.stdout, again.stdout
        assert '1 of 1 runs skipped, as other processes train them' in again.stdout
        log = Path('sweeps/hard/tiny-1.log').read_text()
        assert log.count('=== ') == 1  # the sweep started nothing more
        one.send_signal(signal.SIGTERM)
        assert one.wait(timeout=60) == 130
        assert not lock.exists() and epochs_saved() >= done  # the state goes on, for the next resume
    finally: reap(sweep, *kids, *holders)


def test_a_resume_that_finds_its_run_held_touches_nothing(project, tmp_path):
    "A held run refuses before its state is read: the refusal loads no model and removes nothing."
    from paddy.owner import owned
    state = Path('models/tiny-abcdef.state')
    state.mkdir()
    (state / 'run.json').write_text('{"run": "tiny-abcdef"}')
    holder = subprocess.Popen([sys.executable, '-c', textwrap.dedent(f'''
        import sys, time
        sys.argv = ['paddy', 'train', 'tiny.py']
        from paddy.owner import owned
        with owned('{state}/lock', str):
            print('held', flush=True); time.sleep(60)''')], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == 'held\n'
        one_line_error(run('train', '--resume', 'tiny-abcdef'), f'is being trained by process {holder.pid}')
        assert sorted(p.name for p in state.iterdir()) == ['lock', 'run.json']
        # flock dies with its holder: a lock left by a killed process never blocks
        os.kill(holder.pid, signal.SIGKILL); holder.wait()
        with owned(state / 'lock', str): pass
    finally: reap(holder)


SLOW_BUILD = '''
import os, sys, time
from pathlib import Path
import paddy.data.cache as c
put = c._put
def slow(job): time.sleep(0.15); put(job)
c._put = slow
files = sorted(str(p) for p in Path(sys.argv[1]).rglob('*.jpg'))
c.build(files, c.Item('squish', (32, 32)), Path(sys.argv[2]))
'''


def test_a_killed_cache_build_is_shown_then_removed(project, tmp_path, monkeypatch):
    where = tmp_path / 'items'
    monkeypatch.setenv('PADDY_ITEM_CACHE', str(where))
    builds = []

    def build():
        p = subprocess.Popen([sys.executable, '-c', SLOW_BUILD, project / 'train_images', where],
                             stderr=subprocess.DEVNULL)
        builds.append(p)
        return p, wait_for(lambda: list(where.glob(f'*.tmp-{p.pid}')), proc=p)[0]

    try:
        first, tmp1 = build()
        time.sleep(0.5)  # some of it written
        os.kill(first.pid, signal.SIGKILL); first.wait()
        assert tmp1.is_dir()  # a SIGKILL runs no clean-up: what it left is there
        r = run('cache')
        assert r.exit_code == 0, r.output
        assert 'stale builds, killed before they finished: 1' in r.output and tmp1.name in r.output, r.output
        # a build whose process lives is not stale, and the next build removes the killed one's
        second, tmp2 = build()
        assert not tmp1.exists()
        from paddy.data.cache import stale
        assert stale(where) == []
        assert 'stale' not in run('cache').output
        os.kill(second.pid, signal.SIGKILL); second.wait()
        assert [t for t, _ in stale(where)] == [tmp2]
        r = run('cache', '--clear')
        assert r.exit_code == 0 and not where.exists()
    finally: reap(*builds)


@pytest.fixture
def stopped(project, tiny_spec, monkeypatch):
    "A run stopped after its second epoch, its state kept."
    import paddy.train.trainer as R
    from paddy.spec import load
    from paddy.train import Settings, train
    from test_train_resume import stop_after_the_row
    real = R.learner
    monkeypatch.setattr(R, 'learner', lambda *a, **k: real(*a, **k).add_cb(stop_after_the_row(1)))
    with pytest.raises(KeyboardInterrupt): train(load(str(tiny_spec), ['epochs=5']), Settings(data=str(project)))
    monkeypatch.setattr(R, 'learner', real)
    state, = Path('models').glob('*.state')
    return state


def test_a_damaged_checkpoint_is_named_and_kept(stopped):
    import torch
    run_ = stopped.name.removesuffix('.state')
    pth = stopped / 'model.pth'
    whole = pth.read_bytes()
    pth.write_bytes(whole[:len(whole) // 2])  # as a crash on a full disk leaves it
    one_line_error(run('train', '--resume', run_), f'{pth} is damaged', 'no earlier epoch is kept',
                   f'move {stopped} aside', 'paddy train tiny')
    assert pth.read_bytes() == whole[:len(whole) // 2] and (stopped / 'run.json').is_file()  # left as it was
    torch.save({'weights': torch.zeros(1)}, pth)  # a file of another kind in its place
    one_line_error(run('train', '--resume', run_), f'{pth} is damaged', 'it lacks model, opt, epochs_done')
    pth.write_bytes(whole)
    info = stopped / 'run.json'
    text = info.read_text()
    info.write_text(text[:len(text) // 2])
    one_line_error(run('train', '--resume', run_), f'{info} is damaged', 'no earlier epoch is kept')
    info.write_text(text)
    r = run('train', '--resume', run_)
    assert r.exit_code == 0 and f'{run_}: resuming after 2 of 5 epochs' in r.output, r.output


KILL_MIDWAY = '''
import os, signal, sys
import {module} as m
real = m.{name}
def midway(*args, **kwargs):
    if {when}:
        {half}
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
m.{name} = midway
{main}
'''
CLI = "sys.argv = ['paddy', *sys.argv[1:]]\nfrom paddy.cli import app\napp()"


def killed_midway(module: str, name: str, when: str, half: str, *args, main: str = CLI) -> subprocess.CompletedProcess:
    """Run `paddy ARGS` (or `main`) with `module.name`, a writer, replaced by one that writes half its file where `when`
    holds, then SIGKILLs itself: the kill lands mid-write, every time."""
    code = KILL_MIDWAY.format(module=module, name=name, when=when, half=half, main=main)
    r = subprocess.run([sys.executable, '-c', code, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert r.returncode == -signal.SIGKILL, r.stdout + r.stderr
    return r


def test_a_run_killed_as_it_writes_its_json_is_unfinished_and_resumes(stopped):
    "Its .json is never half there; the model and predictions it had written are made again when it resumes."
    run_ = stopped.name.removesuffix('.state')
    killed_midway('paddy.files', 'Path.write_text', f"args[0].name.startswith('.{run_}.json')",
                  'real(args[0], args[1][:len(args[1]) // 2])', 'train', '--resume', run_)
    assert not Path(f'models/{run_}.json').exists()  # not half a file: none, so the run is not finished
    assert Path(f'models/{run_}.pkl').exists() and Path(f'preds/{run_}.npz').exists() and stopped.is_dir()
    r = run('train', '--resume', run_)
    assert r.exit_code == 0, r.output
    meta = json.loads(Path(f'models/{run_}.json').read_text())
    assert meta['run'] == run_ and Path(f'preds/{run_}.npz').is_file() and not stopped.exists()


def test_predictions_killed_mid_write_leave_no_file(project):
    run_ = next(Path('models').glob('*.json')).stem
    killed_midway('numpy', 'savez', 'True', "args[0].write(b'PK' + bytes(4096)); args[0].flush()",
                  'predict', run_, '--data', project, '--out', 'preds/again.npz')
    assert not Path('preds/again.npz').exists()


CSV_HALF = "real(args[0].head(len(args[0]) // 2), *args[1:], **kwargs)"  # whole rows: it would read as a submission


def test_a_submission_killed_mid_write_is_none_or_the_old_one_whole(project):
    killed_midway('pandas', 'DataFrame.to_csv', "'image_id' in args[0]", CSV_HALF,
                  'ensemble', '--data', project, '--name', 'new')
    assert not Path('submissions/new.csv').exists()
    # `paddy demo` rewrites its submission each time: a kill leaves the one there whole (the project fixture checks
    # its sha256)
    killed_midway('pandas', 'DataFrame.to_csv', "'image_id' in args[0]", CSV_HALF, project,
                  main="from paddy.ensemble import ensemble\nensemble(data=sys.argv[1], name='sub', replace=True)")
