"""One `Settings` object: what `paddy train` reads from its options is what `argv` writes back, so `--processes`, the
sweep and the Kaggle kernel hand a run exactly its settings."""
from typer.testing import CliRunner

from paddy.cli import app
from paddy.train import Settings


def test_argv_reads_back_into_the_same_settings(monkeypatch):
    got = {}
    def start(exp, sets, settings, resume_run):
        got.update(exp=exp, sets=sets, settings=settings, resume=resume_run)
        return 0
    monkeypatch.setattr('paddy.train.trainer.start', start)
    every = Settings(data='/d', cache=False, gpu_cache=False, precision='bf16', channels_last=False, sweep='s/j-1',
                     wandb=True, fit_memory=12.5, processes=3)
    cases = ((every, ('train', 'tiny'), ['epochs=1', 'lr=0.1']), (Settings(), ('train', '--resume', 'r-1'), []))
    for s, head, sets in cases:
        r = CliRunner().invoke(app, s.argv(*head, sets=sets))
        assert r.exit_code == 0, r.output
        assert got['settings'] == s and got['sets'] == sets
        assert (got['exp'], got['resume']) == (('tiny', None) if head[1] == 'tiny' else (None, 'r-1'))


def test_defaults_add_no_options():
    assert Settings().argv('train', 'x') == ['train', 'x']
    assert Settings(fit_memory=15.0).argv('--repeat', '2', sets=['bs=8']) == ['--repeat', '2', '--set', 'bs=8',
                                                                             '--fit-memory', '15']
