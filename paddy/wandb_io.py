"""Weights & Biases, an optional extra: log a run to it, or read a W&B sweep's runs into the results table."""
import dataclasses, os

import pandas as pd

from .errors import PaddyError
from .record import RunRecord
from .results import COLUMNS, row

NEEDS = "--wandb needs wandb: `pip install wandb`, then `wandb login` (or set WANDB_MODE=offline to log locally)"
SUMMARY = ('error_rate', 'tta_error_rate', 'fit_time', 'peak_gpu_mem_gb', 'img_per_s')


def _wandb():
    try: import wandb
    except ImportError: raise PaddyError(NEEDS) from None
    return wandb


def check_installed():
    "Fail before any training when --wandb cannot work."
    _wandb()


def start(run: str, exp, data: str, sweep: str | None = None):
    """Start a W&B run for `run` and return a callback that logs each epoch's history row (losses, metrics, learning
    rate, seconds, whether frozen). Not fastai's WandbCallback: in fastai 2.8.12 its config logging raises before the
    first epoch (fastai issue #4173)."""
    wandb = _wandb()
    from fastai.callback.core import Callback
    from fastai.learner import Recorder

    class LogEpochs(Callback):
        "Log each epoch's row of the run's history, as its checkpoint saved it: W&B gets what the run's .json keeps."
        order = Recorder.order + 1  # after the checkpoint (just before the recorder) has added this epoch's row

        def after_epoch(self):
            saved = next((cb.history for cb in self.learn.cbs if cb.name == 'checkpoint'), [])
            if len(saved) > getattr(self, 'logged', 0):  # an epoch a resume skips, or validate's, adds no row
                self.logged = len(saved)
                wandb.log({k: v for k, v in saved[-1].items() if v is not None})

    wandb.init(project=os.environ.get('WANDB_PROJECT', 'paddy'), name=run, group=(sweep or '').split('/')[0] or None,
               config=dict(experiment=dataclasses.asdict(exp), data=data, sweep=sweep),
               settings=wandb.Settings(console='off'))  # its console capture swallowed fastai's epoch table here
    return LogEpochs()


def finish(rec):
    "Record the numbers `paddy report` ranks by in the run's summary (from its `RunRecord`), then close it."
    wandb = _wandb()
    wandb.run.summary.update({k: getattr(rec, k) for k in SUMMARY})
    wandb.finish()


def from_run(name: str, config: dict, summary: dict) -> dict:
    "A results row from a W&B run: paddy's own runs, or the seed's sweep (model_name, resize_method, GPU_mem)."
    exp = config.get('experiment') or dict(name=config.get('model_name') or config.get('arch') or name,
                                           arch=config.get('model_name') or config.get('arch') or name,
                                           resize=config.get('resize_method'), aug_size=config.get('size'),
                                           epochs=config.get('epochs'))
    fit = summary.get('fit_time', summary.get('_runtime'))
    mem = summary.get('peak_gpu_mem_gb', summary.get('GPU_mem'))
    return row(RunRecord(run=name, experiment=exp, data=config.get('data') or config.get('dataset') or 'wandb',
                         error_rate=summary.get('error_rate'), tta_error_rate=summary.get('tta_error_rate'),
                         fit_time=fit, peak_gpu_mem_gb=mem))


def sweep_results(path: str) -> pd.DataFrame:
    "The finished runs of the W&B sweep `entity/project/sweep_id`."
    wandb = _wandb()
    if path.count('/') != 2: raise PaddyError(f"--wandb {path}: give entity/project/sweep_id")
    try: runs = [r for r in wandb.Api().sweep(path).runs if r.state == 'finished']
    except Exception as e:
        raise PaddyError(f"cannot read the W&B sweep {path} ({type(e).__name__}): check the path and "
                         "`wandb login`") from None
    return pd.DataFrame([from_run(r.name, dict(r.config), dict(r.summary)) for r in runs], columns=COLUMNS)
