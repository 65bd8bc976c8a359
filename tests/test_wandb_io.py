"""Weights & Biases, an optional extra: a clear error without it, offline epoch logs with it, and W&B runs as results
rows."""
from pathlib import Path
import pytest
from conftest import TINY
from test_cli import one_line_error, run

SPECS = {'tiny_convnext': TINY, 'tiny_effnet': TINY.replace('test_convnext', 'test_efficientnet')}


def test_wandb_is_an_optional_extra_with_a_clear_error():
    try: import wandb  # noqa: F401
    except ImportError: pass
    else: pytest.skip('wandb is installed here; the error only shows without it')
    one_line_error(run('train', 'demo_lite0', '--wandb'), 'pip install wandb')
    one_line_error(run('report', '--wandb', 'e/p/s'), 'pip install wandb')
    assert not Path('models').exists()


def test_wandb_offline_logs_each_training_epoch(comp, tiny_spec, monkeypatch, tmp_path):
    """Runs only where the wandb extra is installed (.venv/bin/pip install -e '.[wandb]'): offline mode, nothing leaves
    the machine."""
    wandb = pytest.importorskip('wandb')
    monkeypatch.setenv('WANDB_MODE',
                       'offline'); monkeypatch.setenv('WANDB_DIR',
                                                      str(tmp_path)); monkeypatch.setenv('WANDB_SILENT', 'true')
    logged = []
    real_init = wandb.init
    def init(*a, **k):  # wandb.init rebinds wandb.log to the run's, so watch the run's log instead
        r = real_init(*a, **k); real_log = r.log
        r.log = lambda d, *x, **y: (logged.append(d), real_log(d, *x, **y))[1]
        wandb.log = r.log
        return r
    monkeypatch.setattr(wandb, 'init', init)
    from paddy.spec import load
    from paddy.train import Settings, train
    meta = train(load(str(tiny_spec), ['epochs=2']), Settings(data=comp, wandb=True))
    assert [d['epoch'] for d in logged] == [0, 1]
    assert all({'train_loss', 'valid_loss', 'error_rate', 'lr', 'seconds'} <= set(d) for d in logged)
    assert logged == [{k: v for k, v in h.items() if v is not None} for h in meta['history']]  # the .json's rows
    assert list((tmp_path / 'wandb').glob('offline-run-*')) and Path(f"models/{meta['run']}.json").exists()


def test_wandb_runs_become_results_rows():
    "No W&B service here: the mapping from a run's config and summary is what can be checked offline."
    from paddy.wandb_io import from_run
    seed = from_run('ancient-sweep-3',
                    {'model_name': 'convnext_small_in22k', 'resize_method': 'squish', 'dataset': 'paddy'},
                    {'error_rate': 0.02, '_runtime': 300.0, 'GPU_mem': 5.1})
    got = (seed['family'], seed['resize'], seed['dataset'], seed['fit_time'], seed['gpu_mem_gb'])
    assert got == ('convnext', 'squish', 'paddy', 300.0, 5.1)
    ours = from_run('vit_small_squish-abc123',
                    {'experiment': {'name': 'vit_small_squish', 'arch': 'vit_small_patch16_224', 'aug_size': 224},
                                                'data': '/kaggle/input/paddy-disease-classification'},
                    {'error_rate': 0.03, 'tta_error_rate': 0.025, 'fit_time': 120.0, 'peak_gpu_mem_gb': 3.0,
                     '_runtime': 200.0})
    assert (ours['experiment'], ours['family'], ours['dataset'], ours['fit_time'], ours['tta_helped']) == \
        ('vit_small_squish', 'vit', 'paddy-disease-classification', 120.0, True)
