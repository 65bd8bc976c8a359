"""What a Kaggle kernel pushed by `paddy kaggle run` runs: install paddy from its dataset, then `paddy sweep` on the
competition, leaving models/, preds/ and sweeps/ in the notebook's output. `kernel.script` copies this file's source
into the kernel with a call to `main`, so it uses the standard library only: paddy is not installed when it starts.

A rehearsal on your own machine runs the same script: PADDY_KAGGLE_INPUT=DIR points it at a folder laid out like
/kaggle/input, and PADDY_KAGGLE_TARGET=DIR installs the wheel there alone instead of into the image's Python."""
import json, os, shutil, subprocess, sys, tempfile, time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

try: from paddy.data.mounts import input_root, mounts  # paddy's finder; the pushed script holds its source above this
except ImportError: pass

WORKING = Path('/kaggle/working')
STARTED = time.time()  # the session's clock starts about here: the image is up and this script began
MARGIN = 15 * 60, 0.1  # kept back from the limit, at most 15 min or a tenth: for Kaggle to save the output
KEEP = ('torch', 'torchvision')  # the image's CUDA builds: pip must never swap them for PyPI's


def fail(msg: str):
    sys.exit(f'paddy: error: {msg}')


def install(whl: Path, target: str | None) -> dict:
    """pip-install paddy's wheel with its missing dependencies, pinning the image's torch; the environment the sweep
    runs in."""
    env, kept = dict(os.environ), []
    if target:  # a rehearsal: paddy alone, ahead of what the running Python has
        cmd = ['--no-deps', '--target', target]
        env['PYTHONPATH'] = os.pathsep.join([target] + [p for p in [env.get('PYTHONPATH')] if p])
    else:
        pins = Path(tempfile.gettempdir()) / 'paddy-pins.txt'
        for n in KEEP:
            try: kept.append(f'{n}=={version(n)}')
            except PackageNotFoundError: pass
        pins.write_text('\n'.join(kept) + '\n')
        cmd = ['-c', str(pins)]
    print(f'installing {whl.name}…', flush=True)
    if subprocess.call([sys.executable, '-m', 'pip', 'install', '-q', '--no-input', *cmd, str(whl)], env=env):
        fail(f"pip could not install {whl.name}, for the reason above: the notebook needs Internet on, and paddy's "
             f"dependencies must accept the image's {' and '.join(kept) or 'torch'}")
    return env


def main(bundle: str, competition: str, experiments: list[str], args: list[str], kernel: str = '',
         dataset: str = 'paddy-lib', sweep: str = '', hours: float = 12.0, playbook: str = '', run: str = ''):
    """Find this kernel's paddy dataset version and the competition, install paddy, run the sweep (or the playbook
    `playbook` as run `run`) within the session's `hours`, and record what ran and what was skipped; exit with the
    sweep's code, which is 0 when runs were only skipped, so that Kaggle keeps the output."""
    root = input_root()
    work = WORKING if WORKING.is_dir() else Path.cwd()
    os.chdir(work)
    lib = [p for p in mounts(dataset, root) if (p / f'paddy-{bundle}.json').is_file()]
    if not lib:
        fail(f"no paddy-{bundle}.json under {root}: this notebook mounts another version of the paddy-lib dataset; run "
             "`paddy kaggle run` again")
    lib = lib[0]
    manifest = json.loads((lib / f'paddy-{bundle}.json').read_text())
    data = [p for p in mounts(competition, root) if (p / 'sample_submission.csv').is_file()]
    if not data: fail(f"no {competition} under {root}: add the competition to the notebook's inputs")
    env = install(lib / manifest['wheel'], os.environ.get('PADDY_KAGGLE_TARGET'))
    (work / 'experiments').mkdir(exist_ok=True)
    for e in experiments: shutil.copy(lib / f'{e}.py', work / 'experiments' / f'{e}.py')
    (work / 'models').mkdir(exist_ok=True)
    for done in manifest.get('finished', []):  # pulled from an earlier version: the sweep counts them as done
        shutil.copy(lib / f'finished-{done}.json', work / 'models' / f'{done}.json')
    left = hours * 3600 - (time.time() - STARTED) - min(MARGIN[0], MARGIN[1] * hours * 3600)
    if playbook:
        left += earlier_playbook(lib, manifest, work, playbook, run)
        cmd = [sys.executable, '-m', 'paddy', 'playbook', playbook, '--name', run]
    else: cmd = [sys.executable, '-m', 'paddy', 'sweep', *experiments, *args, *(['--name', sweep] if sweep else [])]
    cmd += ['--data', str(data[0]), '--hours', f'{max(left, 1) / 3600:.4f}']
    print('running', ' '.join(cmd[1:]), flush=True)
    t0 = time.time()
    rc = subprocess.call(cmd, env=env)
    results = [json.loads(p.read_text()) for p in
               sorted(work.glob(f'sweeps/{run}-*/result.json' if playbook else f"sweeps/{sweep or '*'}/result.json"))]
    if not playbook: results = results[:1]
    record = dict(kernel=kernel, bundle=bundle, experiments=experiments, args=args, data=str(data[0]), exit_code=rc,
                  seconds=round(time.time() - t0), gpus=gpus(), finished=time.strftime('%Y-%m-%dT%H:%M:%S%z'),
                  sweep=sweep, hours=hours, **{k: [x for r in results for x in r.get(v, [])] for k, v in
                                               (('ran', 'finished'), ('skipped', 'skipped'), ('failed', 'failed'))})
    if playbook:
        state = work / 'playbooks' / run / 'state.json'
        record.update(playbook=playbook, run=run,
                      stages=list(json.loads(state.read_text())['stages']) if state.is_file() else [])
    (work / 'paddy-kaggle-run.json').write_text(json.dumps(record, indent=1))
    sys.exit(rc)


def earlier_playbook(lib: Path, manifest: dict, work: Path, playbook: str, run: str) -> float:
    """Lay out what earlier sessions of playbook run `run` left, as `paddy playbook` finds it: the playbook, its state
    and its finished runs' predictions (their .json are laid out with the sweep's). Returns the seconds its finished
    stages spent, which the playbook takes off its budget, so that this session has its own time limit."""
    folder = work / 'playbooks' / run
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(lib / f'playbook-{playbook}.py', work / 'playbooks' / f'{playbook}.py')
    for f in manifest.get('state', []): shutil.copy(lib / f'state-{f}', folder / f)
    (work / 'preds').mkdir(exist_ok=True)
    for r in manifest.get('preds', []): shutil.copy(lib / f'finished-{r}.npz', work / 'preds' / f'{r}.npz')
    state = folder / 'state.json'
    # State.spent, here where paddy is not importable
    return sum(s['seconds'] for s in json.loads(state.read_text())['stages'].values()) if state.is_file() else 0.0


def gpus() -> list[str]:
    try: return subprocess.run(['nvidia-smi', '-L'], capture_output=True, text=True, timeout=30).stdout.splitlines()
    except (OSError, subprocess.SubprocessError): return []
