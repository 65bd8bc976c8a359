"""The Kaggle round trip through the real kaggle client, against a stand-in server on loopback (kagglesdk's TEST)."""
import base64, io, re, zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import make_comp
from kaggle_stub import StubKaggle, offline
from paddy.predict import save_preds
from test_cli import one_line_error, run

COMP = 'paddy-disease-classification'
KEY = 'S3CRET-kaggle-key-0123'


@pytest.fixture(autouse=True)
def kaggle_env(monkeypatch, tmp_path):
    "Credentials from the environment only, and no token or kaggle.json of whoever runs the tests."
    monkeypatch.setenv('KAGGLE_API_ENVIRONMENT', 'TEST')
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    monkeypatch.setenv('KAGGLE_USERNAME', 'tester')
    monkeypatch.setenv('KAGGLE_KEY', KEY)
    monkeypatch.setenv('NO_PROXY', 'localhost,127.0.0.1')
    for var in ('KAGGLE_API_TOKEN', 'KAGGLE_KERNEL_RUN_TYPE', 'HTTP_PROXY', 'http_proxy'):
        monkeypatch.delenv(var, raising=False)
    from kaggle.api.kaggle_api_extended import KaggleApi
    monkeypatch.setattr(KaggleApi, 'config', str(tmp_path / 'home' / 'no-kaggle.json'))


def comp_zip(tmp_path) -> bytes:
    "The competition's files zipped as Kaggle serves them: flat, no top folder."
    src = make_comp(tmp_path / 'zip-src')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as z:
        for p in sorted(src.rglob('*')):
            if p.is_file(): z.write(p, p.relative_to(src).as_posix())
    return buf.getvalue()


@pytest.fixture
def stub(tmp_path):
    with StubKaggle(comp_zip(tmp_path), COMP) as s: yield s


@pytest.fixture
def downloaded(stub):
    r = run('download')
    assert r.exit_code == 0, r.output
    return Path('data') / COMP


def ensembled(data: Path, name='best') -> Path:
    "Two runs' predictions (random, but shaped like real ones) ensembled by paddy into submissions/NAME.csv."
    sample = np.array(pd.read_csv(data / 'sample_submission.csv', dtype=str).image_id.tolist())
    rng = np.random.default_rng(0)
    for run_name in ('a-000001', 'b-000002'):
        save_preds(Path('preds') / f'{run_name}.npz', run_name, dict(
            vocab=np.array(['cat', 'dog',
                            'fish']), data=np.array(str(data.resolve())),
                                                                     valid_ids=np.array(['cat000.jpg', 'dog000.jpg']),
            valid_probs=rng.dirichlet(np.ones(3),
                                      2), valid_targets=np.array([0,
                                                                  1]), test_ids=sample,
                                                                     test_probs=rng.dirichlet(np.ones(3), len(sample))))
    r = run('ensemble', '--name', name, '--weights', '3,1')
    assert r.exit_code == 0, r.output
    return Path('submissions') / f'{name}.csv'


def test_download_then_submit_end_to_end(stub, downloaded):
    assert all((downloaded / p).exists() for p in ('train_images/cat', 'test_images', 'train.csv',
                                                   'sample_submission.csv'))
    assert not list(Path('data').glob('.*')), 'no partial download or staging folder is left behind'
    assert stub.endpoints() == ['DownloadDataFiles'] and stub.calls[0][1] == {'competitionName': COMP}
    assert stub.auth[0] == 'Basic ' + base64.b64encode(f'tester:{KEY}'.encode()).decode()

    csv = ensembled(downloaded)
    r = run('submit', csv, '-m', 'convnext + vit, 3:1')
    assert r.exit_code == 0, r.output
    assert stub.endpoints() == ['DownloadDataFiles', 'StartSubmissionUpload', 'CreateSubmission']
    start, create = stub.calls[1][1], stub.calls[2][1]
    assert start['competitionName'] == COMP
    assert start['fileName'] == 'best.csv'
    assert start['contentLength'] == csv.stat().st_size
    assert stub.uploads[create['blobFileTokens']] == csv.read_bytes()
    assert create['competitionName'] == COMP and create['submissionDescription'] == 'convnext + vit, 3:1'

    log = pd.read_csv('submissions/log.csv', dtype=str, keep_default_na=False)
    assert len(log) == 1
    row = log.iloc[0]
    meta = pd.read_json(csv.with_suffix('.json'), typ='series')
    assert row.file == str(csv)
    assert row.sha256 == meta.sha256
    assert row.message == 'convnext + vit, 3:1'
    assert row.competition == COMP
    assert row.runs == 'a-000001;b-000002' and row.weights == '0.75;0.25' and row.method == 'mean' and row.ref == '1001'
    assert float(row.valid_error) == pytest.approx(meta.valid_error['ensemble'], abs=1e-5)
    assert KEY not in r.output and KEY not in Path('submissions/log.csv').read_text()


def test_verbose_never_prints_credentials(stub, comp, monkeypatch):
    "kaggle reads VERBOSE=1 at import into KaggleApi.args and then prints every request's headers."
    from kaggle.api.kaggle_api_extended import KaggleApi
    monkeypatch.setattr(KaggleApi, 'args', ['--verbose'])
    monkeypatch.setenv('KAGGLE_API_ENVIRONMENT', 'PROD')  # the client's own path, which honours --verbose
    monkeypatch.setenv('HTTPS_PROXY', 'http://127.0.0.1:9')  # a closed port: it fails without leaving the machine
    r = run('submit', write(good_submission(comp)), '-m', 'x', '--data', comp)
    assert r.exit_code == 2 and 'could not reach Kaggle' in r.output
    encoded = base64.b64encode(f'tester:{KEY}'.encode()).decode()
    assert KEY not in r.output and encoded not in r.output and 'Authorization' not in r.output


def test_download_is_skipped_when_the_files_are_there(stub, downloaded):
    r = run('download')
    assert r.exit_code == 0 and 'nothing to download' in r.output
    assert stub.endpoints() == ['DownloadDataFiles']


def test_download_never_overwrites_a_partial_folder(stub):
    (Path('data') / COMP).mkdir(parents=True)
    (Path('data') / COMP / 'train.csv').write_text('mine')
    one_line_error(run('download'), 'move it aside')
    assert (Path('data') / COMP / 'train.csv').read_text() == 'mine' and stub.calls == []


@pytest.mark.parametrize('layout', ['{slug}', 'competitions/{slug}'])  # before 2026, and since (kaggle-cli #1140)
def test_kaggle_notebook_uses_its_input_folder(stub, monkeypatch, tmp_path, layout):
    monkeypatch.setenv('PADDY_KAGGLE_INPUT', str(tmp_path / 'kaggle-input'))
    monkeypatch.setenv('KAGGLE_KERNEL_RUN_TYPE', 'Interactive')
    one_line_error(run('download'), 'Add Input')
    mounted = make_comp(tmp_path / 'kaggle-input' / layout.format(slug=COMP))
    r = run('download')
    assert r.exit_code == 0 and str(mounted) in r.output
    assert stub.calls == [] and not Path('data').exists()


def test_unaccepted_rules_name_the_rules_page(stub):
    stub.fail['DownloadDataFiles'] = (403, 'You must accept this competition\u2019s rules before you\u2019ll be able '
                                           'to download files.')
    one_line_error(run('download'), '403', f'https://www.kaggle.com/competitions/{COMP}/rules')
    assert not (Path('data') / COMP).exists() and not list(Path('data').iterdir())


def test_unknown_slug_suggests_the_right_one(stub):
    one_line_error(run('download', '-c', 'paddy-disease-clasification'),
                   "no competition 'paddy-disease-clasification'", f'did you mean {COMP}?')


def test_rejected_credentials(stub):
    stub.fail['DownloadDataFiles'] = (401, 'Unauthenticated')
    one_line_error(run('download'), '401', 'Generate New Token')


def test_missing_credentials_name_the_fix(stub, monkeypatch):
    monkeypatch.delenv('KAGGLE_USERNAME'); monkeypatch.delenv('KAGGLE_KEY')
    one_line_error(run('download'), 'no Kaggle credentials', '~/.kaggle/access_token', 'KAGGLE_API_TOKEN')
    assert stub.calls == []


def test_unreachable_kaggle_is_one_line():
    with offline(): one_line_error(run('download'), 'could not reach Kaggle at http://localhost:7777')


def good_submission(data: Path) -> pd.DataFrame:
    ids = pd.read_csv(data / 'sample_submission.csv', dtype=str).image_id
    return pd.DataFrame({'image_id': ids, 'label': ['cat', 'dog', 'fish'] * (len(ids) // 3)})


def write(df: pd.DataFrame, name='sub.csv', index=False) -> Path:
    df.to_csv(name, index=index)
    return Path(name)


def test_check_submission_passes_a_good_file(comp):
    r = run('check-submission', write(good_submission(comp)), '--data', comp)
    assert r.exit_code == 0 and '6 rows, ready to submit' in r.output


@pytest.mark.parametrize('spoil, needles', [
    (lambda d: d.rename(columns={'label': 'class'}), ["header is 'image_id,class'", 'image_id,label']),
    (lambda d: d.iloc[::-1], ["not in sample_submission.csv's order", 'row 2']),
    (lambda d: d.sort_values('image_id'), ["not in sample_submission.csv's order"]),
    (lambda d: d.iloc[:-2], ['2 ids of sample_submission.csv are missing', 'predict every test image']),
    (lambda d: pd.concat([d, d.iloc[:1]]), ['1 ids appear more than once']),
    (lambda d: d.replace({'image_id': {d.image_id.iloc[0]: 'x.jpg'}}), ['are not in sample_submission.csv (x.jpg)',
                                                                        'are missing']),
    (lambda d: d.assign(label=['cat', '', 'fish'] * 2), ['2 rows have no label', 'rows 3, 6']),
    (lambda d: d.assign(label=['cat', 'blast',
                               'fish'] * 2), ['2 labels are not the competition', 'blast',
                                              'use one of cat, dog, fish']),
])
def test_check_submission_refuses_each_bad_case(comp, spoil, needles):
    r = run('check-submission', write(spoil(good_submission(comp))), '--data', comp)
    assert r.exit_code == 2 and 'Traceback' not in r.output, r.output
    lines = r.output.strip().splitlines()
    assert all(l.startswith('paddy: error: sub.csv: ') for l in lines)
    for n in needles: assert n in r.output


def test_check_submission_lists_every_problem_one_line_each(comp):
    bad = good_submission(comp).iloc[::-1].assign(label=['cat', '', 'hat'] * 2)
    lines = run('check-submission', write(bad), '--data', comp).output.strip().splitlines()
    assert len(lines) == 3
    assert any('order' in l for l in lines)
    assert any('no label' in l for l in lines)
    assert any('hat' in l for l in lines)


def test_check_submission_names_a_stray_index_column(comp):
    r = run('check-submission', write(good_submission(comp), index=True), '--data', comp)
    assert r.exit_code == 2 and 'index=False' in r.output


def test_wrong_order_is_refused_before_any_upload(stub, comp):
    one_line_error(run('submit', write(good_submission(comp).iloc[::-1]), '-m', 'x', '--data', comp), 'order')
    assert stub.calls == [] and not Path('submissions/log.csv').exists()


def test_submit_needs_a_message(stub, comp):
    one_line_error(run('submit', write(good_submission(comp)), '-m', ' ', '--data', comp), 'give a message with -m')
    assert stub.calls == []


def test_the_same_file_twice_needs_again(stub, comp):
    sub = write(good_submission(comp))
    assert run('submit', sub, '-m', 'first', '--data', comp).exit_code == 0
    one_line_error(run('submit', sub, '-m', 'second', '--data', comp), 'already submitted', "'first'", '--again')
    assert run('submit', sub, '-m', 'second', '--data', comp, '--again').exit_code == 0
    assert pd.read_csv('submissions/log.csv').message.tolist() == ['first', 'second']
    assert len(stub.submissions) == 2


def test_a_refused_submission_is_not_logged(stub, comp):
    stub.fail['StartSubmissionUpload'] = (403, 'You must accept the rules')
    r = run('submit', write(good_submission(comp)), '-m', 'x', '--data', comp)
    assert r.exit_code == 2 and 'Traceback' not in r.output
    errors = [l for l in r.output.splitlines() if l.startswith('paddy: error: ')]
    assert len(errors) == 1 and '(403)' in errors[0] and f'{COMP}/rules' in errors[0]
    assert not Path('submissions/log.csv').exists()


def test_submissions_joins_the_log_with_the_scores(stub, comp):
    csv = ensembled(comp)
    assert run('submit', csv, '-m', 'ensemble', '--data', comp).exit_code == 0
    assert run('submit', write(good_submission(comp)), '-m', 'by hand', '--data', comp).exit_code == 0
    stub.submissions.append({'submissionDescription': 'from the website'})  # made outside paddy
    stub.scores = {1001: ('0.98100', '0.97900'), 1003: ('0.5', '0.5')}
    r = run('submissions')
    assert r.exit_code == 0, r.output
    rows = {l.split()[1]: l for l in r.output.splitlines()[1:] if len(l.split()) > 1}
    meta = pd.read_json(csv.with_suffix('.json'), typ='series')
    assert '0.98100' in rows['submissions/best.csv'] and '0.97900' in rows['submissions/best.csv']
    assert f"{meta.valid_error['ensemble']:.5f}" in rows['submissions/best.csv']
    assert 'a-000001;b-000002' in rows['submissions/best.csv']
    assert 'pending' in rows['sub.csv']
    assert 'from the website' in r.output and '(not in the log)' in r.output
    assert stub.endpoints()[-1] == 'ListSubmissions' and stub.calls[-1][1]['competitionName'] == COMP


def test_submissions_reads_every_page_by_token(stub, comp):
    "120 submissions come in pages of 50 chained by nextPageToken; a page number would fetch page 1 again and again."
    for k in range(120): stub.submissions.append({'submissionDescription': f'old #{k:03d}'})
    r = run('submissions')
    assert r.exit_code == 0, r.output
    listed = re.findall(r'old #(\d{3})', r.output)
    assert sorted(listed) == [f'{k:03d}' for k in range(120)]  # every one, none twice
    assert [c[1].get('pageToken', '') for c in stub.calls if c[0] == 'ListSubmissions'] == ['', 'p50', 'p100']


def test_submissions_offline_shows_the_log_alone(stub, comp):
    assert run('submit', write(good_submission(comp)), '-m', 'logged', '--data', comp).exit_code == 0
    stub.stop()
    r = run('submissions')
    assert r.exit_code == 0, r.output
    assert 'scores could not be fetched' in r.output and 'could not reach Kaggle' in r.output
    assert 'logged' in r.output and 'not fetched' in r.output


def test_submissions_with_nothing_logged_and_offline_is_one_line():
    with offline(): one_line_error(run('submissions'), 'nothing to show', 'could not reach Kaggle')
