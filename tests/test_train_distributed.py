"""One run on two processes through Hugging Face Accelerate (torchrun underneath, gloo on CPU): one model, one .json
that says world_size 2, one prediction file; each process takes its share of the batch."""
import json, os, subprocess, sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paddy.cli import app
from paddy.errors import PaddyError
from paddy.spec import Experiment
from paddy.train.loop import accum_setup

pytestmark = pytest.mark.slow  # every test here trains in subprocesses: left out of make test-fast


@pytest.mark.timeout(600)
def test_accelerate_launch_on_two_processes_writes_one_run(comp, tiny_spec):
    env = {**os.environ, 'MASTER_PORT': '29533'}
    cmd = [sys.executable, '-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', '2',
           '--num_machines', '1', '--mixed_precision', 'no', '--dynamo_backend', 'no', '--main_process_port', '29533',
           '-m', 'paddy', 'train', str(tiny_spec), '--data', str(comp), '--set', 'epochs=2']
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=500)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    metas = list(Path('models').glob('*.json'))
    assert len(metas) == 1
    assert len(list(Path('models').glob('*.pkl'))) == 1
    assert len(list(Path('preds').glob('*.npz'))) == 1
    meta = json.loads(metas[0].read_text())
    assert meta['world_size'] == 2 and meta['n_train'] == 29 and Path(f"preds/{meta['run']}.npz").exists()
    assert r.stdout.count(f"{meta['run']}: test_convnext") == 1
    assert 'bs 4×1×2' in r.stdout  # one header, each process half a batch
    # every line once, and the last epoch's error that of the 7 validation images, not of fastai's padding to 8
    assert r.stderr.count('item cache:') == 1 and 'Grad strides' not in r.stderr
    last = [l.split() for l in r.stdout.splitlines() if l[:1].isdigit() and len(l.split()) == 5][-1]
    assert float(last[3]) == pytest.approx(meta['error_rate'], abs=1e-6)
    assert not list(Path('models').glob('*.state'))


def test_each_process_takes_its_share_of_the_batch():
    exp = Experiment(name='x', arch='resnet18', bs=64, accum=2)
    assert accum_setup(exp, 2)[0] == 16 and accum_setup(exp, 2)[1][0].n_acc == 32
    assert accum_setup(exp)[0] == 32 and accum_setup(exp)[1][0].n_acc == 64
    with pytest.raises(PaddyError, match='does not split into accum=2 × 3 processes'): accum_setup(exp, 3)


def test_processes_shorthand_refuses_nonsense():
    r = CliRunner().invoke(app, ['train', 'convnext_small_rect', '--processes', '0'])
    assert r.exit_code == 2 and '--processes 0: give 1 or more' in r.output


@pytest.mark.timeout(600)
def test_the_processes_shorthand_launches_the_same(comp, tiny_spec):
    r = subprocess.run([sys.executable, '-m', 'paddy', 'train', str(tiny_spec), '--data', str(comp), '--processes',
                        '2'],
                       capture_output=True, text=True, env={**os.environ, 'MASTER_PORT': '29534'}, timeout=500)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert 'launching: accelerate.commands.launch --num_processes 2' in r.stderr
    assert [json.loads(p.read_text())['world_size'] for p in Path('models').glob('*.json')] == [2]
