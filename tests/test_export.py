"""Take a model anywhere: `paddy export` (safetensors, config, card, predict.py), `paddy predict MODEL FOLDER` and
`paddy push`, on real tiny runs, loaded for real (no mocks of timm or safetensors)."""
import csv, importlib.util, io, json, re, shutil, subprocess, sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from paddy.cli import app
from paddy.errors import PaddyError
from paddy.export import export, export_ensemble, learner_probs, network, parity_files, head_layer
from paddy.predict import load_model
from paddy.record import read_record
from paddy.workspace import Workspace

runner = CliRunner()
KINDS = {'squish': ['pretrained={weights}'], 'crop': ['resize=crop', 'item_size=40'],
         'pad': ['resize=pad', 'item_size=40'], 'rect': ['item_size=(64,48)', 'aug_size=(64,48)'],
         'variety': ['variety=True']}
# a fresh interpreter in which fastai and paddy cannot be imported: an export must not need them
BLOCKED = """import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, *a):
        if name.split('.')[0] in ('fastai', 'paddy', 'fastcore'): raise ImportError(f'{name} is blocked')
sys.meta_path.insert(0, Block())
"""


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "Five tiny runs, one of each view and head, each exported; an ensemble of two, exported."
    from conftest import TINY, make_comp, weights_file, with_variety
    from paddy.ensemble import ensemble
    from paddy.spec import load
    from paddy.train import Settings, train
    d = tmp_path_factory.mktemp('export')
    comp, ws = with_variety(make_comp(d / 'comp')), Workspace(d)
    (d / 'tiny.py').write_text(TINY)
    w = weights_file(d / 'w.pth')
    out = {}
    for kind, sets in KINDS.items():
        rec = train(load(str(d / 'tiny.py'), [s.format(weights=w) for s in sets]), Settings(data=comp), ws)
        out[kind] = SimpleNamespace(run=rec['run'], folder=export(rec['run'], ws))
    ensemble([out['squish'].run, out['crop'].run], weights='3,1', name='pair', data=comp, ws=ws)
    return SimpleNamespace(d=d, comp=comp, ws=ws, kinds=out, ensemble=export_ensemble('pair', ws))


def photos(root: Path, comp: Path) -> Path:
    "A folder of photos in subfolders, with a broken file, a truncated JPEG and a text file that is no photo."
    (root / 'field' / 'sub').mkdir(parents=True)
    for k, f in enumerate(sorted((comp / 'test_images').glob('*.jpg'))):
        shutil.copy(f, root / 'field' / ('sub' if k % 2 else '') / f.name)
    (root / 'field' / 'sub' / 'broken.jpg').write_text('not a photo')
    (root / 'field' / 'cut.jpg').write_bytes((comp / 'test_images' / 't000.jpg').read_bytes()[:300])
    (root / 'field' / 'notes.txt').write_text('no photo')
    return root / 'field'


def rows(text: str) -> list[dict]: return list(csv.DictReader(io.StringIO(text)))


OUTSIDE = BLOCKED + """import contextlib, io, json, os, runpy, sys, torch
args = json.loads(sys.argv[1])
sys.path.insert(0, args['home']); import predict
res = {'probs': {}}
for folder, files in args['files'].items():
    net, cfg = predict.load(folder)
    x = predict.view(torch.stack([predict.pixels(f, cfg['preprocess']) for f in files]), cfg['preprocess'])
    res['probs'][folder] = predict.probs(net, cfg, x).tolist()
out, err, sys.argv = io.StringIO(), io.StringIO(), [args['home'] + '/predict.py', args['field']]
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):  # as `python predict.py FIELD` runs it
    try: runpy.run_path(sys.argv[0], run_name='__main__')
    except SystemExit as e: res['code'] = e.code
res['stdout'], res['stderr'], out = out.getvalue(), err.getvalue(), io.StringIO()
os.chdir(args['home'])
with contextlib.redirect_stdout(out): exec(args['snippet'], {})  # the model card's, as written
res['snippet'] = out.getvalue()
print(json.dumps(res))
"""


@pytest.fixture(scope='module')
def outside(runs, tmp_path_factory):
    """One fresh interpreter where fastai and paddy cannot be imported: every export's probabilities of its run's
    photos, `python predict.py` on a folder of field photos, and the squish export's model card snippet."""
    home, field = runs.kinds['squish'].folder, photos(tmp_path_factory.mktemp('outside'), runs.comp)
    files = {str(r.folder): parity_files(read_record(runs.ws.record(r.run))) for r in runs.kinds.values()}
    snippet = re.search(r'```python\n(.*?)```', (home / 'README.md').read_text(), re.S).group(1)
    shutil.copy(runs.comp / 'test_images' / 't000.jpg', home / 'photo.jpg')
    try: p = subprocess.run([sys.executable, '-c', OUTSIDE, json.dumps(dict(home=str(home), files=files,
                                                                             field=str(field), snippet=snippet))],
                            capture_output=True, text=True, timeout=240)
    finally: (home / 'photo.jpg').unlink()
    assert p.returncode == 0, p.stderr[-3000:]
    return SimpleNamespace(files=files, field=field, **json.loads(p.stdout))


def test_each_export_matches_the_learner_in_a_process_without_fastai_or_paddy(runs, outside):
    files, got = outside.files, outside.probs
    for kind, r in runs.kinds.items():
        learn = load_model(runs.ws.model(r.run), ours=True)
        want = learner_probs(learn, files[str(r.folder)])
        assert len(files[str(r.folder)]) == 7 and np.abs(np.array(got[str(r.folder)]) - want).max() < 1e-4, kind
        cfg = json.loads((r.folder / 'config.json').read_text())
        assert cfg['provenance']['parity']['max_abs_diff'] < 1e-5 and cfg['provenance']['run'] == r.run  # exact, nearly
        assert not [f for f in r.folder.rglob('*') if f.suffix in ('.pkl', '.pth', '.pt', '.bin')]
    cfgs = {k: json.loads((r.folder / 'config.json').read_text()) for k, r in runs.kinds.items()}
    assert cfgs['crop']['preprocess']['resize'] == 'crop' and cfgs['pad']['preprocess']['resize'] == 'pad'
    assert cfgs['rect']['preprocess']['size'] == [64, 48]
    norm = load_model(runs.ws.model(runs.kinds['squish'].run), ours=True).dls.after_batch.fs[-1]
    assert np.allclose(cfgs['squish']['preprocess']['mean'], norm.mean.flatten().tolist())  # read, not assumed
    assert cfgs['crop']['preprocess']['mean'] is None  # random init: fastai normalises nothing
    assert [g['labels'] for g in cfgs['variety']['groups']] == [['cat', 'dog', 'fish'], ['early', 'late']]
    assert cfgs['squish']['provenance']['weights_sha256'] and cfgs['squish']['tta'] == ['plain', 'flip']


def test_predict_py_paddy_predict_and_the_run_agree(runs, outside):
    field, r = outside.field, runs.kinds['squish']
    assert outside.code == 1 and 'sub/broken.jpg: cannot read' in outside.stderr
    assert 'cut.jpg: cannot read' in outside.stderr
    script = rows(outside.stdout)
    assert [x['filename'] for x in script] == sorted(f't00{k}.jpg' if k % 2 == 0 else f'sub/t00{k}.jpg'
                                                     for k in range(6))
    res = runner.invoke(app, ['predict', str(r.folder), str(field), '--out', 'e.csv'])
    assert res.exit_code == 1, res.output
    shutil.copytree(runs.d / 'models', 'models')  # a run is found in the project's models/
    res = runner.invoke(app, ['predict', r.run, str(field), '--out', 'r.csv'])
    assert res.exit_code == 1, res.output
    ours = {x['filename']: x for x in rows(Path('e.csv').read_text()) if not x['error']}
    theirs = {x['filename']: x for x in rows(Path('r.csv').read_text()) if not x['error']}
    assert list(ours) == [x['filename'] for x in script] == list(theirs)
    for x in script:
        assert ours[x['filename']]['label'] == x['label'] == theirs[x['filename']]['label']
        assert abs(float(ours[x['filename']]['probability']) - float(x['probability'])) < 1e-6
        assert abs(float(theirs[x['filename']]['probability']) - float(x['probability'])) < 1e-4


def test_a_folder_with_bad_photos_gets_a_row_for_each_names_the_bad_and_exits_non_zero(runs, tmp_path):
    field = photos(tmp_path, runs.comp)
    res = runner.invoke(app, ['predict', str(runs.kinds['variety'].folder), str(field), '--out', 'out.csv',
                              '--top-k', '2', '--probs', '--tta'])
    assert res.exit_code == 1 and '2 of them unreadable' in res.output, res.output
    got = rows(Path('out.csv').read_text())
    assert len(got) == 8 and 'notes.txt' not in {x['filename'] for x in got}  # a text file is no photo
    bad = {x['filename']: x['error'] for x in got if x['error']}
    assert set(bad) == {'sub/broken.jpg', 'cut.jpg'} and all(not x['label'] for x in got if x['error'])
    assert 'sub/broken.jpg: cannot read' in res.output and 'cut.jpg: cannot read' in res.output
    for x in (x for x in got if not x['error']):
        ps = [float(x[f'p_{c}']) for c in ('cat', 'dog', 'fish')]  # the disease group alone, summing to 1
        assert abs(sum(ps) - 1) < 1e-4 and float(x['probability']) >= float(x['probability_2'])
        assert x['label'] == ('cat', 'dog', 'fish')[int(np.argmax(ps))]


def test_push_to_a_stand_in_hub_loads_back_and_predicts_the_same(runs, tmp_path):
    from paddy.push import push
    hub = tmp_path / 'hub'

    class Api:  # huggingface_hub.HfApi's two calls, writing to a folder instead of the hub
        def create_repo(self, repo_id, private=None, exist_ok=False, repo_type=None):
            assert exist_ok and repo_type == 'model'
            (hub / repo_id).mkdir(parents=True, exist_ok=True)
            (hub / repo_id / '.private').write_text(str(private))
            return f'https://huggingface.co/{repo_id}'
        def upload_folder(self, folder_path, repo_id, repo_type=None, commit_message=None):
            shutil.copytree(folder_path, hub / repo_id, dirs_exist_ok=True)
    r = runs.kinds['rect']
    push(r.folder, 'me/rice', private=True, api=Api())
    assert (hub / 'me/rice/.private').read_text() == 'True'
    with pytest.raises(PaddyError, match='is not a paddy export'): push(runs.comp, 'me/x', api=Api())
    # as a user would: the downloaded folder's own predict.py, imported by path
    spec = importlib.util.spec_from_file_location('pulled', hub / 'me/rice/predict.py')
    pulled = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pulled)
    net, cfg = pulled.load(hub / 'me/rice')
    files = parity_files(read_record(runs.ws.record(r.run)))
    x = pulled.view(__import__('torch').stack([pulled.pixels(f, cfg['preprocess']) for f in files]), cfg['preprocess'])
    want = learner_probs(load_model(runs.ws.model(r.run), ours=True), files)
    assert np.abs(pulled.probs(net, cfg, x).numpy() - want).max() < 1e-4


def test_an_exported_ensemble_is_its_members_plain_probabilities_with_its_weights(runs, tmp_path):
    from paddy.infer import Export
    ens = json.loads((runs.ensemble / 'ensemble.json').read_text())
    assert [(m['run'], m['weight']) for m in ens['members']] == [(runs.kinds['squish'].run, 0.75),
                                                                 (runs.kinds['crop'].run, 0.25)]
    field = runs.comp / 'test_images'
    res = runner.invoke(app, ['predict', str(runs.ensemble), str(field), '--out', 'ens.csv', '--probs'])
    assert res.exit_code == 0, res.output
    got = np.array([[float(x[f'p_{c}']) for c in ('cat', 'dog', 'fish')] for x in rows(Path('ens.csv').read_text())])
    files = sorted(field.glob('*.jpg'))
    want = sum(w * Export(runs.ensemble / 'members' / r.run)(files, False)[0]
               for w, r in ((0.75, runs.kinds['squish']), (0.25, runs.kinds['crop'])))
    assert got.shape == (6, 3) and np.abs(got - want).max() < 1e-5
    assert not np.allclose(want, Export(runs.kinds['squish'].folder)(files, False)[0], atol=1e-3)  # both count


def test_the_model_card_says_what_and_how_well_and_its_snippet_runs(runs, outside):
    r = runs.kinds['squish']
    card = (r.folder / 'README.md').read_text()
    rec = read_record(runs.ws.record(r.run))
    assert f'{rec.tta_error_rate:.4f} (95% interval' in card and 'test_convnext' in card and 'curves.png' in card
    assert (r.folder / 'curves.png').stat().st_size > 1000
    assert outside.snippet.strip() in ('cat', 'dog', 'fish')  # it ran as written, without fastai or paddy


def test_export_refuses_what_it_cannot_express_and_writes_nothing(runs, monkeypatch):
    import torch, torch.nn as nn
    with pytest.raises(PaddyError, match=r"head's layer 3 \(GELU\) cannot be exported"): head_layer(nn.GELU(), 3, 'r')
    tv = SimpleNamespace(model=nn.Sequential(nn.Conv2d(3, 8, 3), nn.Linear(8, 3)))
    with pytest.raises(PaddyError, match='resnet18 is not a timm model'): network(tv, 'r', 'resnet18')
    learn = load_model(runs.ws.model(runs.kinds['crop'].run), ours=True)
    _, sd = network(SimpleNamespace(model=torch.compile(learn.model)), 'r', 'test_convnext')  # compiled: no prefix
    assert sd and all(k.startswith(('body.', 'head.')) and '_orig_mod' not in k for k in sd)
    import paddy.export as E
    monkeypatch.setattr(E, 'PARITY_TOL', -1.0)  # a parity no export can meet
    ws = Workspace(runs.d, exports=Path('exports'))
    with pytest.raises(PaddyError, match="differ from the Learner's"): export(runs.kinds['pad'].run, ws)
    assert not Path('exports').exists() or not any(Path('exports').iterdir())
