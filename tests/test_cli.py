"""The CLI through typer's CliRunner: exit codes, one-line errors, and a whole run."""
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from paddy.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(map(str, args)))


def test_list_shows_every_experiment():
    r = run('list')
    assert r.exit_code == 0
    for name in ('convnext_small_rect', 'vit_small_pad', 'swinv2_large_squish', 'demo_lite0'):
        assert name in r.output
    assert '(640, 480)' in r.output and '(288, 224)' in r.output


def one_line_error(r, *needles):
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('paddy: error: ') and 'Traceback' not in r.output
    for n in needles: assert n in lines[0]


def test_train_without_data_names_the_fix():
    one_line_error(run('train', 'convnext_small_rect'), 'paddy download', '--data')


def test_train_offline_hub_weights_names_the_fix(comp):
    one_line_error(run('train', 'convnext_small_rect', '--data', comp), 'Hugging Face cache', '--set pretrained=False')


def test_bad_spec_input_is_one_line():
    one_line_error(run('train', 'nope'), "no experiment 'nope'")
    one_line_error(run('train', 'convnext_small_rect', '--set', 'epochs=x'), 'epochs')
    one_line_error(run('train', 'vit_small_squish', '--set', 'aug_size=288'), 'set aug_size = 224')
    one_line_error(run('ensemble', '--weights', 'a,b'), '--weights')
    one_line_error(run('predict', 'nope-123456'), 'no exported model')


def test_train_then_ensemble_through_the_cli(comp, tiny_spec):
    r = run('train', tiny_spec, '--data', comp, '--set', 'epochs=1')
    assert r.exit_code == 0, r.output
    assert 'tiny-' in r.output and 'TTA error' in r.output
    r = run('ensemble', '--name', 'cli')  # the folder the runs predicted on is recorded with them
    assert r.exit_code == 0, r.output
    sub = pd.read_csv('submissions/cli.csv')
    assert sub.image_id.tolist() == pd.read_csv(comp / 'sample_submission.csv').image_id.tolist()
    one_line_error(run('ensemble', '--name', 'cli', '--data', comp), 'never overwritten')


def test_demo_data_only_lays_out_the_digits_without_training():
    r = run('demo', '--data-only')
    assert r.exit_code == 0, r.output
    assert len(pd.read_csv('data/demo/train.csv')) + len(pd.read_csv('data/demo/sample_submission.csv')) == 1797
    assert not Path('models').exists() and not Path('submissions').exists()


def test_logs_into_a_pipe_carry_no_bars_and_no_empty_tables(comp, tiny_spec):
    r = run('train', tiny_spec, '--data', comp, '--set', 'epochs=2')
    assert r.exit_code == 0, r.output
    out = r.output
    assert '█' not in out and '\r' not in out and 'Epoch 1/2' not in out
    headers = [l for l in out.splitlines() if l.startswith('epoch') and 'train_loss' in l]
    rows = [l for l in out.splitlines() if l[:1].isdigit() and l.split()[0] in ('0', '1')]
    assert len(headers) == 1 and len(rows) == 2  # one table, for the training, with its two epochs
    assert 'TTA on 7 validation images' in out and 'TTA on 6 test images' in out


def commands():
    "Every command of the CLI, as the words that call it."
    import typer.main
    for name, cmd in typer.main.get_command(app).commands.items():
        if hasattr(cmd, 'commands'): yield from ((name, sub) for sub in cmd.commands)  # paddy kaggle run, …
        else: yield (name,)


def test_every_help_works():
    "Rich reads `[...]` in a help text as markup: `owner/slug[/version]` once crashed `paddy kaggle status --help`."
    every = list(commands())
    assert ('kaggle', 'status') in every and ('export',) in every and ('push',) in every and len(every) == 26
    for c in every:
        r = run(*c, '--help')
        assert r.exit_code == 0 and 'Usage' in r.output and 'Traceback' not in r.output, (c, r.output)
    assert 'owner/slug[/version]' in run('kaggle', 'pull', '--help').output
