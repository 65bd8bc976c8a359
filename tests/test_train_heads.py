"""Part 4's variety head: trained beside the disease on the digits (variety = even or odd), recorded, and kept out of
predictions; refused in one line where train.csv has no variety."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from paddy.cli import app
from paddy.demo import LABELS, build_digits
from paddy.ensemble import ensemble
from paddy.predict import load_preds, predict
from paddy.spec import load
from paddy.train import Settings, train


def test_disease_and_variety_heads_train_and_only_the_disease_is_predicted(tmp_path, tiny_spec):
    root = build_digits(tmp_path / 'demo')
    df = pd.read_csv(root / 'train.csv', dtype=str, keep_default_na=False)
    df['variety'] = ['even' if LABELS.index(l) % 2 == 0 else 'odd' for l in df.label]
    df.to_csv(root / 'train.csv', index=False)
    meta = train(load(str(tiny_spec), ['variety=True']), Settings(data=root))
    assert meta['experiment']['variety'] is True
    assert 0 <= meta['error_rate'] <= 1
    assert 0 <= meta['variety_error_rate'] <= 1
    assert meta['variety_error_rate'] != meta['error_rate']
    saved = json.loads(Path(f"models/{meta['run']}.json").read_text())
    assert saved['variety_error_rate'] == meta['variety_error_rate']
    p = load_preds(Path(f"preds/{meta['run']}.npz"))
    n_test = len(pd.read_csv(root / 'sample_submission.csv'))
    assert p['vocab'].tolist() == sorted(LABELS)
    assert p['test_probs'].shape == (n_test, 10)
    assert p['valid_probs'].shape[1] == 10
    np.testing.assert_allclose(p['test_probs'].sum(1), 1, rtol=1e-4)  # the disease head's softmax alone
    again = load_preds(predict(meta['run'], out=Path('preds/again.npz')))  # the exported model carries both heads
    assert again['test_probs'].shape == (n_test, 10)
    sub = ensemble([meta['run']], name='variety', data=root)
    assert pd.read_csv(sub['csv']).label.isin(LABELS).all()


def test_variety_without_a_variety_column_is_one_line(comp, tiny_spec):
    r = CliRunner().invoke(app, ['train', str(tiny_spec), '--data', str(comp), '--set', 'variety=True'])
    assert r.exit_code == 2 and r.output.count('\n') == 1
    assert 'variety = True needs a variety on every row of' in r.output
    assert '36 of 36 have none: set variety = False' in r.output
    assert not Path('models').exists() or not list(Path('models').glob('*.json'))
