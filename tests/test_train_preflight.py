"""Memory preflight: a smaller budget gets a larger accum with the same effective batch; on CPU it does nothing."""
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paddy.cli import app
from paddy.errors import PaddyError
from paddy.train.preflight import candidates, choose
from paddy.spec import Experiment
from paddy.sweep import Sweep


def by_micro_batch(gb_per_image: float):
    "A stand-in for the GPU: peak memory grows with the micro-batch, as activations do."
    seen = []
    def measure(exp):
        seen.append((exp.accum, exp.bs))
        return exp.bs // exp.accum * gb_per_image
    return measure, seen


def test_a_smaller_budget_gets_a_larger_accum_and_the_same_batch(capsys):
    exp = Experiment(name='big', arch='convnext_large', bs=64)
    assert candidates(exp) == [1, 2, 4, 8, 16, 32, 64]
    assert candidates(Experiment(name='x', arch='a', bs=48, accum=2)) == [1, 2, 4, 8, 16]
    measure, seen = by_micro_batch(0.25)  # 16 GB at micro-batch 64
    assert choose(exp, 20, measure)[0] == 1
    accum, peak, tried = choose(exp, 10, measure)
    assert (accum, peak, tried) == (2, 8.0, [(1, 16.0), (2, 8.0)])
    assert choose(exp, 3, measure)[0] == 8 and all(bs == 64 for _, bs in seen)  # the effective batch never changes
    assert 'preflight: accum 8 (micro-batch 8): peak 2.0 GB of 3' in capsys.readouterr().out
    with pytest.raises(PaddyError,
                       match=r'even accum 64 \(micro-batch 1\) peaks at 0.2 GB, over --fit-memory 0.1: lower aug_size'):
        choose(exp, 0.1, measure)
    with pytest.raises(PaddyError, match='give the GPU memory to fit in'): choose(exp, 0, measure)


def test_on_cpu_it_says_it_does_nothing_in_one_line(comp, tiny_spec):
    r = CliRunner().invoke(app, ['train', str(tiny_spec), '--data', str(comp), '--fit-memory', '4'])
    assert r.exit_code == 0, r.output
    assert '--fit-memory 4: no CUDA device here, so no GPU memory to fit; training with accum 1' in r.output
    meta = json.loads(next(Path('models').glob('*.json')).read_text())
    assert meta['fit_memory'] is None and meta['experiment']['accum'] == 1


def test_a_sweep_passes_it_to_every_run(comp, tiny_spec):
    s = Sweep([str(tiny_spec)], repeat=2, data=comp, fit_memory=12.0)
    assert all(s.command(j)[-2:] == ['--fit-memory', '12'] for j in s.exp)
    plain = Sweep([str(tiny_spec)], repeat=2, data=comp)
    assert 'fit_memory' not in plain.args and plain.name != s.name  # sweeps started without it keep their names
