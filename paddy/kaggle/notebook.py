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
         dataset: str = 'paddy-lib', sweep: str = '', hours: float = 12.0):
    """Find this kernel's paddy dataset version and the competition, install paddy, run the sweep within the session's
    `hours`, and record what ran and what was skipped; exit with the sweep's code, which is 0 when runs were only
    skipped, so that Kaggle keeps the output."""
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
    for run in manifest.get('finished', []):  # pulled from an earlier version: the sweep counts them as done
        shutil.copy(lib / f'finished-{run}.json', work / 'models' / f'{run}.json')
    left = hours * 3600 - (time.time() - STARTED) - min(MARGIN[0], MARGIN[1] * hours * 3600)
    cmd = [sys.executable, '-m', 'paddy', 'sweep', *experiments, *args, '--data', str(data[0]),
           *(['--name', sweep] if sweep else []), '--hours', f'{max(left, 1) / 3600:.4f}']
    print('running', ' '.join(cmd[1:]), flush=True)
    t0 = time.time()
    rc = subprocess.call(cmd, env=env)
    result = next(iter(sorted(work.glob(f"sweeps/{sweep or '*'}/result.json"))), None)
    result = json.loads(result.read_text()) if result else {}
    record = dict(kernel=kernel, bundle=bundle, experiments=experiments, args=args, data=str(data[0]), exit_code=rc,
                  seconds=round(time.time() - t0), gpus=gpus(), finished=time.strftime('%Y-%m-%dT%H:%M:%S%z'),
                  sweep=sweep, hours=hours, ran=result.get('finished', []), skipped=result.get('skipped', []),
                  failed=result.get('failed', []))
    (work / 'paddy-kaggle-run.json').write_text(json.dumps(record, indent=1))
    sys.exit(rc)


def gpus() -> list[str]:
    try: return subprocess.run(['nvidia-smi', '-L'], capture_output=True, text=True, timeout=30).stdout.splitlines()
    except (OSError, subprocess.SubprocessError): return []
