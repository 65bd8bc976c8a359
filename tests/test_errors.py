"""Bad input through the CLI: each gets one line per problem that names it and the fix, exit code 2, no traceback,
and every file that was there before is unchanged. docs/errors.md lists the same cases."""
import hashlib, shutil, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from paddy.cli import app
from paddy.predict import save_preds

runner = CliRunner()


def tree() -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path('.').rglob('*')) if p.is_file()}


def fake_run(name: str, comp: Path, vocab=('cat', 'dog', 'fish'), ids=None, valid=(), **extra):
    "A prediction file as `paddy train` writes it, without the training: `valid` ids get validation probabilities."
    ids = pd.read_csv(comp / 'sample_submission.csv').image_id.tolist() if ids is None else ids
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(len(vocab)), len(ids)).astype(np.float32)
    if valid: extra.update(valid_ids=np.array(valid), valid_targets=np.zeros(len(valid), int),
                           valid_probs=rng.dirichlet(np.ones(len(vocab)), len(valid)).astype(np.float32))
    save_preds(Path(f'preds/{name}.npz'), name, dict(vocab=np.array(vocab), data=np.array(str(comp.resolve())),
                                                     test_ids=np.array(ids), test_probs=probs,
                                                     **{k: np.asarray(v) for k, v in extra.items()}))


@pytest.fixture(scope='module')
def an_export(tmp_path_factory) -> Path:
    "A real export of an untrained tiny network, laid out as `paddy export` writes one: something to damage."
    import json, timm
    from safetensors.torch import save_file
    from paddy import portable
    d = tmp_path_factory.mktemp('an-export')
    nf = timm.create_model('test_convnext', pretrained=False, num_classes=0).num_features
    cfg = dict(format='paddy-export', schema=portable.SCHEMA, architecture='test_convnext', model_args={},
               body='forward_features', head=[dict(type='concat_pool'), dict(type='flatten'),
                                              dict(type='linear', **{'in': 2 * nf, 'out': 3, 'bias': False})],
               groups=[dict(name='label', labels=['cat', 'dog', 'fish'])], tta=['plain', 'flip'],
               preprocess=dict(resize='squish', item_size=[32, 32], crop=None, size=[32, 32], scale=0.9,
                               mean=None, std=None))
    save_file({k: v.contiguous() for k, v in portable.Net(cfg).state_dict().items()}, str(d / 'model.safetensors'))
    for name, change in [('good', {}), ('newer', dict(schema=99)), ('unknown', dict(architecture='convnext_smal')),
                         ('resized', dict(head=cfg['head'][:2] + [dict(cfg['head'][2], out=4)],
                                          groups=[dict(name='label', labels=['cat', 'dog', 'fish', 'eel'])])),
                         ('classes', dict(groups=[dict(name='label', labels=['cat', 'dog', 'fish', 'eel'])]))]:
        (d / name).mkdir()
        (d / name / 'config.json').write_text(json.dumps({**cfg, **change}))
        shutil.copy(d / 'model.safetensors', d / name)
    shutil.copytree(d / 'good', d / 'cut')
    (d / 'cut/model.safetensors').write_bytes((d / 'good/model.safetensors').read_bytes()[:5000])
    (d / 'model.safetensors').unlink()
    return d


@pytest.fixture
def scene(comp, tiny_spec, an_export):
    "A project folder with data, specs good and bad, runs that cannot be ensembled together, and damaged files."
    Path('specs').mkdir(exist_ok=True)
    Path('specs/broken.py').write_text("arch = 'resnet18'\nepochs = (\n")
    Path('specs/empty.py').write_text('"""a spec that declares nothing"""\n')
    Path('specs/unknown_arch.py').write_text("arch = 'convnext_smal'\n")
    Path('nodata').mkdir()
    shutil.copytree(comp, 'thumbs')
    Path('thumbs/train_images/cat/Thumbs.db').write_bytes(b'\xd0\xcf\x11\xe0 not an image')  # Windows' thumbnails
    fake_run('a-000001', comp)
    fake_run('b-000002', comp, vocab=('ant', 'bee', 'cow'))
    fake_run('c-000003', comp, ids=[f'x{i}.jpg' for i in range(6)])
    Path('preds/d-000004.npz').write_bytes(Path('preds/a-000001.npz').read_bytes()[:300])  # cut short
    fake_run('cv1-000007', comp, valid=['cat000.jpg', 'dog000.jpg'], folds='aaaaaaaaaaaa')
    fake_run('cv2-000008', comp, valid=['cat000.jpg', 'dog000.jpg'], folds='bbbbbbbbbbbb')
    fake_run('s-000009', comp, valid=['cat000.jpg'])
    fake_run('full-000010', comp, split='full')
    Path('folds').mkdir()  # the plan that --folds 3 makes on comp, damaged
    Path(f'folds/{plan_of(comp)}.csv').write_text('image_id,label,fold\ncat000.jpg,cat,one\n')
    Path('models').mkdir()
    Path('models/m-000005.pkl').write_bytes(b'not really a model')
    Path('models/m-000005.json').write_text('{"run": "m-000005", "experim')  # cut short
    Path('models/r-000006.state').mkdir()
    Path('models/r-000006.state/run.json').write_text('{"run": "r-0000')
    Path('models/cv-000011.folds').mkdir()
    book = "candidates = ['{c}']\nscreen_size = 24\nscreen_sets = ['item_size=32', 'aug_size=32']\nscreen_epochs = 1\n"
    Path('specs/tinybook.py').write_text(book.format(c=tiny_spec))
    Path('specs/badbook.py').write_text(book.format(c='nope_exp'))
    Path('playbooks/damaged-comp').mkdir(parents=True)
    Path('playbooks/damaged-comp/state.json').write_text('{"args": {"playbook": "tinyb')
    Path('a-file').write_text('not a folder')
    Path('submissions').mkdir()
    Path('submissions/taken.csv').write_text('image_id,label\n')
    Path('bad.csv').write_text('id,label\n'
                               + ''.join(f'{i},cat\n' for i in pd.read_csv(comp / 'sample_submission.csv').image_id))
    shutil.copytree(an_export, 'exports')
    img = comp / 'train_images' / 'cat' / 'cat000.jpg'
    img.write_bytes(img.read_bytes()[:-200])
    return comp, tiny_spec


def plan_of(comp: Path, k: int = 3) -> str:
    "The name of the fold plan that `--folds k` makes on `comp` with the tiny spec's seed, 42."
    from paddy.data import read_train
    from paddy.folds import digest, make
    return digest(make(read_train(comp), k, 42))


CASES = [  # (arguments, text the first line must hold[, environment]); {comp} and {spec} are filled in
    (['train', 'nope'], "no experiment 'nope' in experiments/"),
    (['train', 'specs/broken.py'], 'specs/broken.py: SyntaxError'),
    (['train', 'specs/empty.py'], "specs/empty.py: set `arch`"),
    (['train', 'specs/unknown_arch.py'], "unknown arch 'convnext_smal'; close matches: convnext_small"),
    (['train', 'vit_small_squish', '--set', 'aug_size=288'],
     'only takes 224×224 input but aug_size is 288×288: set aug_size = 224'),
    (['train', 'convnext_small_rect', '--set', 'epoch=3'], "unknown field 'epoch' (did you mean 'epochs'?)"),
    (['train', 'convnext_small_rect', '--set', 'epochs=many'], "epochs='many' must be of type int"),
    (['train', 'convnext_small_rect', '--set', 'item_size=128x96'], "--set 'item_size=(320,240)'"),
    (['train', '{spec}', '--set', 'lr=-1'], 'lr=-1.0 must be a positive number'),
    (['train', '{spec}', '--set', 'lr=1e999'], 'lr=inf must be a positive number'),
    (['train', '{spec}', '--set', 'min_scale=0'], 'min_scale=0.0 must be above 0 and at most 1'),
    (['train', '{spec}', '--set', 'valid_pct=1.5'], 'valid_pct=1.5 must be between 0 and 1'),
    (['train', '{spec}', '--set', 'compile_mode=fast'], "compile_mode='fast' must be one of default, reduce-overhead"),
    (['train', '{spec}', '--set', 'compile=True', '--set', 'compile_backend=nope'],
     "compile_backend='nope' is not a torch.compile backend"),
    (['train', '{spec}', '--set', 'mixup=-0.2'], 'mixup=-0.2 must be a Beta alpha ≥ 0, 0 for off'),
    (['train', '{spec}', '--set', 'cutmix=1e999'], 'cutmix=inf must be a Beta alpha ≥ 0, 0 for off'),
    (['train', '{spec}', '--set', 'mix_switch=2'], 'mix_switch=2.0 must be a chance, from 0 to 1'),
    (['train', '{spec}', '--set', 'mix_off_epochs=3'], 'mix_off_epochs=3 must be from 0 to epochs=1'),
    (['train', '{spec}', '--set', 'label_smoothing=1'], 'label_smoothing=1.0 must be in [0, 1)'),
    (['train', '{spec}', '--set', 'label_smoothing=-0.1'], 'label_smoothing=-0.1 must be in [0, 1)'),
    (['train', '{spec}', '--set', 'ema=1'], 'ema=1.0 must be a decay in [0, 1)'),
    (['train', '{spec}', '--set', 'lr_mult=0.5'], "lr_mult=0.5 must be ≥ 1: after the frozen epoch the body trains"),
    (['train', '{spec}', '--set', 'epochs=3', '--set', 'aug_sizes=[64,32]'],
     'aug_sizes=[64, 32] must grow from each size to the next'),
    (['train', '{spec}', '--set', 'epochs=3', '--set', 'aug_sizes=[(64,48),(64,48)]'],
     'aug_sizes=[(64, 48), (64, 48)] must grow from each size to the next'),
    (['train', '{spec}', '--set', 'aug_sizes=[32,64]'], 'aug_sizes has 2 sizes for 1 epochs'),
    (['train', '{spec}', '--set', 'aug_sizes=128x96'], "aug_sizes='128x96' must be a list of sizes"),
    (['train', 'vit_small_squish', '--set', 'aug_sizes=[128,224]'],
     'only takes 224×224 input but aug_sizes is 128×128, 224×224'),
    (['interpret'], 'give a run (paddy interpret RUN) or an ensemble'),
    (['interpret', 'nope-123456'], 'no predictions preds/nope-123456.npz'),
    (['interpret', 'a-000001'], 'a-000001 has no validation predictions'),
    (['interpret', '--ensemble', 'nope'], 'no ensemble submissions/nope.json'),
    (['interpret', 'a-000001', '--out', 'a-file'], 'a-file exists and is never overwritten: pass --out OTHER'),
    (['interpret', 'a-000001', '--top', '0'], '--top 0: give 1 or more'),
    (['train', 'convnext_small_rect'], 'no competition data at data/paddy-disease-classification'),
    (['train', '{spec}', '--data', 'nodata'],
     'nodata lacks train_images, test_images, train.csv, sample_submission.csv'),
    (['train', '{spec}', '--data', '{comp}'], 'train_images/cat/cat000.jpg: truncated (no JPEG end-of-image marker)'),
    (['train', '{spec}', '--data', '{comp}', '--precision', 'fp8'],
     '--precision fp8: choose one of auto, bf16, fp16, fp32'),
    (['train', '--resume', 'nope-123456'], 'no saved state models/nope-123456.state/run.json'),
    (['train', '--resume', '../models/x'], '--resume ../models/x: give a run name'),
    (['train', '--resume', 'r-000006'], 'models/r-000006.state/run.json is damaged (JSONDecodeError'),
    (['ensemble', 'a-*', 'b-*'], 'runs have different vocabularies and cannot be averaged'),
    (['ensemble', 'a-*', 'c-*'], 'runs predicted different test sets'),
    (['ensemble', 'z*'], "no predictions match 'z*' in preds/"),
    (['ensemble', 'd-*'], 'preds/d-000004.npz is damaged (BadZipFile'),
    (['ensemble', 'a-*', '--weights', '1,2'], '--weights needs 1 non-negative numbers, one per run'),
    (['ensemble', 'a-*', '--weights', 'nan'], '--weights needs 1 non-negative numbers, one per run'),
    (['ensemble', 'a-*', '--weights', 'inf'], '--weights needs 1 non-negative numbers, one per run'),
    (['ensemble', 'a-*', '--weights', '1,x'], '--weights 1,x: give numbers separated by commas'),
    (['ensemble', 'a-*', '--select', 'best'], '--select best: choose greedy or logloss'),
    (['ensemble', 'cv1-*', 'cv2-*'],
     'cv1-000007 was validated on fold plan aaaaaaaaaaaa and cv2-000008 on bbbbbbbbbbbb'),
    (['ensemble', 'cv1-*', 's-*'], 'cv1-000007 is a CV run (fold plan aaaaaaaaaaaa) and s-000009 a single-split run'),
    (['ensemble', 'full-*', 'cv1-*', '--select', 'logloss'],
     'full-000010 trained on every image with no CV run of its recipe to stand for it'),
    (['train', '{spec}', '--data', '{comp}', '--folds', '1'], '--folds 1: give 2 or more folds'),
    (['train', '{spec}', '--data', '{comp}', '--folds', '13'], 'the smallest class, cat, has 12 images'),
    (['train', '{spec}', '--data', '{comp}', '--folds', '3'], 'folds/{plan}.csv is damaged'),
    (['train', '{spec}', '--folds', '3', '--full'], '--folds K makes a CV run and --full the final fit after it'),
    (['train', '--resume', 'r-000006', '--folds', '3'], '--resume r-000006 finishes the run as it was started'),
    (['train', '{spec}', '--folds', '3', '--processes', '2'], 'a CV run or final fit is not one'),
    (['sweep', '{spec}', '--data', '{comp}', '--folds', '1'], '--folds 1: give 2 or more folds'),
    (['pseudo', 'a', '--dest', 'out', '--threshold', '1.5'], '--threshold 1.5: give a probability between 0 and 1'),
    (['pseudo', 'a', '--dest', 'out', '--threshold', '0'], '--threshold 0: give a probability between 0 and 1'),
    (['pseudo', 'a', '--dest', 'out', '--max-share', '0'], '--max-share 0: give the largest share'),
    (['pseudo', 'nope', '--dest', 'out'], 'no ensemble submissions/nope.json'),
    (['playbook', 'nope'], "no playbook 'nope' in playbooks/"),
    (['playbook', 'specs/badbook.py', '--data', '{comp}'], "specs/badbook.py: candidate nope_exp: no experiment"),
    (['playbook', 'specs/tinybook.py', '--data', '{comp}', '--hours', '0.00001'],
     'and one final run alone needs about'),
    (['playbook', 'specs/tinybook.py', '--data', '{comp}', '--name', 'damaged-comp'],
     'playbooks/damaged-comp/state.json is damaged'),
    (['playbook', 'specs/tinybook.py', '--hours', '0'], '--hours 0: give the time there is'),
    (['playbook', 'specs/tinybook.py', '--submit'], "--submit needs a message: -m 'what is in it'"),
    (['pseudo', 'nope', '--dest', 'a-file'], 'a-file exists and is never overwritten: pass another --dest'),
    (['ensemble', 'a-*', '--select', 'greedy', '--weights', '1'], 'chooses the weights itself: drop --weights'),
    (['ensemble', 'a-*', '--name', 'taken', '--data', '{comp}'],
     'submissions/taken.csv exists and is never overwritten: pass --name OTHER'),
    (['predict', 'nope-123456'], 'no exported model models/nope-123456.pkl'),
    (['predict', 'bad.csv.pkl'],
     'is not a run in models/ with its .json, and loading a pickle runs any code in it: pass --trust'),
    (['predict', '..'], "'..' is not a run name"),
    (['predict', 'cv-000011'], "cv-000011 is a CV run, whose models are its folds'"),
    (['predict', 'm-000005'], 'models/m-000005.json is damaged (JSONDecodeError'),
    (['predict', 'exports/cut', '{comp}/test_images'], 'exports/cut/model.safetensors is damaged or truncated'),
    (['predict', 'exports/resized', '{comp}/test_images'], 'exports/resized/config.json does not match its weights'),
    (['predict', 'exports/classes', '{comp}/test_images'], 'names 4 labels but its head has 3 outputs'),
    (['predict', 'exports/newer', '{comp}/test_images'], 'exports/newer is an export of schema 99, newer than'),
    (['predict', 'exports/unknown', '{comp}/test_images'], "has no architecture 'convnext_smal'"),
    (['predict', 'exports/good', '{comp}/test_images', '--out', 'a-file'],
     'a-file exists and is never overwritten: pass --out OTHER.csv'),
    (['predict', 'exports/good', 'nowhere'], 'no folder nowhere: give a folder of photos'),
    (['predict', 'exports/good', '{comp}/test_images', '--top-k', '4'], '--top-k 4: give 1 to 3'),
    (['predict', 'nodata', '{comp}/test_images'], 'nodata holds neither config.json nor ensemble.json'),
    (['predict', 'exports/good'], 'exports/good is an export: give a FOLDER of photos to label'),
    (['predict', 'a-000001', '--tta'], '--top-k, --tta and --probs are for labelling a FOLDER'),
    (['export'], 'name a run, or --ensemble NAME'),
    (['export', 'a-000001', '--out', 'a-file'], 'a-file exists and is never overwritten: pass --out OTHER'),
    (['export', 'nope-123456'], 'no exported model models/nope-123456.pkl'),
    (['export', '--ensemble', 'nope'], 'no ensemble submissions/nope.json'),
    (['push', 'nodata', 'me/rice'], 'nodata is not a paddy export'),
    (['push', 'exports/good', 'me/rice'], 'the hub cannot be reached', {'HF_TOKEN': 'hf_not_a_real_token'}),
    (['check-submission', 'bad.csv', '--data', '{comp}'], "its header is 'id,label'"),
    (['check-submission', 'nope.csv', '--data', '{comp}'], 'no file nope.csv: write one with paddy ensemble'),
    (['check', '--data', 'nodata'], 'nodata lacks train_images'),
    (['check', '--data', '{comp}'], 'PADDY_WORKERS=abc: give a whole number', {'PADDY_WORKERS': 'abc'}),
    (['check'], 'no competition data at nowhere (PADDY_DATA)', {'PADDY_DATA': 'nowhere'}),
    (['cache'], 'PADDY_ITEM_CACHE=a-file: that is a file, not a folder', {'PADDY_ITEM_CACHE': 'a-file'}),
    (['resize', '--max-size', '0', '--data', '{comp}'], '--max-size 0: give the longest side in pixels'),
    (['resize', '--max-size', '24', '--data', '{comp}', '--dest', '{comp}/small'], 'is inside the data it copies'),
    (['resize', '--max-size', '24', '--data', 'thumbs'], 'thumbs/train_images/cat/Thumbs.db is not an image'),
    (['sizes', '--data', 'nowhere'], 'no competition data at nowhere (--data)'),
    (['sweep', '{spec}', '--repeat', '0'], '--repeat 0: give 1 or more'),
    (['sweep', '{spec}', '--hours', '0'], '--hours 0: give the time there is'),
    (['sweep', '{spec}', '--engine', 'nope'], '--engine nope: give local or ray'),
    (['sweep', '{spec}', '--address', 'auto'], '--address auto names a Ray cluster: add --engine'),
    (['sweep', '{spec}', '--engine', 'ray', '--gpus', '0'], "--gpus 0 picks this machine's GPUs"),
    (['sweep', '{spec}', '--engine', 'ray', '--address', 'nohost'], '--address nohost: give auto, or the head'),
    (['sweep', '{spec}', '--engine', 'ray', '--address', '127.0.0.1:1'], 'no Ray cluster answers at 127.0.0.1:1'),
    (['kaggle', 'run', 'nope', '--dry-run', 'out'], "no experiment 'nope' in experiments/"),
    (['kaggle', 'run', 'demo_scratch', '--repeat', '0'], '--repeat 0: give 1 or more'),
    (['kaggle', 'run', 'demo_scratch', 'demo_scratch'], 'the same experiment is named twice: use --repeat'),
    (['kaggle', 'run', 'demo_scratch', '--accelerator', 'TpuV5E8'], '--accelerator TpuV5E8 is not a GPU: give one of'),
    (['kaggle', 'run', 'demo_scratch', '--accelerator', 'NvidiaTeslaP100'], '--accelerator NvidiaTeslaP100 is retired'),
    (['kaggle', 'run', 'demo_scratch', '--accelerator', 'NvidiaK80'], '--accelerator NvidiaK80 is unknown'),
    (['kaggle', 'run', 'demo_lite0', '--set', 'pretrained={spec}'],
     "is a file on this machine, which a Kaggle notebook can't read"),
    (['kaggle', 'run', 'demo_scratch', '--title', 'abc'], "--title 'abc': Kaggle wants 5 to 50 characters"),
    (['kaggle', 'run', 'demo_scratch', '--fit-memory', '0'], "--fit-memory 0: give the GPU's memory in GB"),
    (['kaggle', 'run', 'demo_scratch', '--hours', '13'], '--hours 13: a GPU session on Kaggle lasts up to 12 hours'),
    (['kaggle', 'run'], 'name at least one experiment'),
    (['kaggle', 'run', 'demo_scratch', '--playbook', 'quick'], '--playbook quick names its candidates'),
    (['lr-find', 'nope'], "no experiment 'nope' in experiments/"),
    (['train', '{spec}', '--set', 'lr=fast'],
     "lr='fast' must be a positive number (Road to the Top used 0.01), or 'find'"),
    (['curves', 'nope-123456'], 'no run nope-123456 in models/ (finished or stopped)'),
    (['kaggle', 'status'], 'no kernel pushed from here (kaggle-runs.csv is missing or empty)'),
    (['kaggle', 'pull'], 'no kernel pushed from here (kaggle-runs.csv is missing or empty)'),
]


def shown(case) -> str:
    "A case as docs/errors.md writes it: the environment, then the command."
    args, env = case[0], case[2] if len(case) > 2 else {}
    return ''.join(f'{k}={v} ' for k, v in env.items()) + 'paddy ' + ' '.join(args)


@pytest.mark.parametrize('case', CASES, ids=[shown(c)[:70] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(scene, case, monkeypatch):
    comp, spec = scene
    args, env = [a.format(comp=comp, spec=spec) for a in case[0]], case[2] if len(case) > 2 else {}
    needle = case[1].format(plan=plan_of(comp)) if '{plan}' in case[1] else case[1]
    for k, v in env.items(): monkeypatch.setenv(k, v)
    before = tree()
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    out = [l for l in r.output.splitlines() if l.strip()]
    assert out and all(l.startswith(('paddy: error: ', 'note: ')) for l in out), r.output
    assert 'Traceback' not in r.output and needle in out[0], out
    assert tree() == before
    # docs/errors.md shows what it printed, so a message that changes changes the doc too (but where it names a
    # temporary path or a time this machine measured)
    shown_line = out[0].removeprefix('paddy: error: ').replace(str(comp), 'comp')
    if shown(case) not in VARIES:
        row = f"| `{shown(case)}` | 2 | {shown_line} |"
        assert row in DOC, f"docs/errors.md should hold: {row}"


DOC = (Path(__file__).resolve().parent.parent / 'docs' / 'errors.md').read_text()
VARIES = {'paddy playbook specs/tinybook.py --data {comp} --hours 0.00001',  # a probe's seconds
          'paddy kaggle run demo_lite0 --set pretrained={spec}'}  # the test's own temporary folder


def test_the_cases_are_distinct_and_documented():
    assert len({shown(c) for c in CASES}) == len(CASES) >= 50
    doc = (Path(__file__).resolve().parent.parent / 'docs' / 'errors.md').read_text()
    for c in CASES: assert f"`{shown(c)}`" in doc, shown(c)


def test_a_sweep_on_ray_without_ray_installed_says_how_to_get_it(scene, monkeypatch):
    comp, spec = scene
    monkeypatch.setitem(sys.modules, 'ray', None)  # as if never installed: `import ray` raises ImportError
    before = tree()
    r = runner.invoke(app, ['sweep', str(spec), '--engine', 'ray'])
    assert r.exit_code == 2 and r.output.strip() == (
        "paddy: error: --engine ray needs Ray, which is not installed: pip install 'paddy[ray]'"), r.output
    assert tree() == before


def test_a_sweep_on_ray_at_an_address_where_something_else_answers_is_one_line(scene):
    "A port that answers, but not as a Ray head (here a plain HTTP server, as Ray's dashboard is): one line at once."
    import http.server, threading
    comp, spec = scene
    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args): pass  # its log would be on this process's stderr, beside paddy's line

    server = http.server.HTTPServer(('127.0.0.1', 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f'127.0.0.1:{server.server_port}'
    before = tree()
    try: r = runner.invoke(app, ['sweep', str(spec), '--engine', 'ray', '--address', address])
    finally: server.shutdown()
    assert r.exit_code == 2 and r.output.strip() == (
        f"paddy: error: --address {address}: something answers at {address}, but not a Ray head: give the address "
        "that `ray start --head` printed (port 6379 unless --port), not the dashboard's (docs/cluster.md)"), r.output
    assert tree() == before


def test_a_write_stopped_halfway_leaves_nothing_and_replaces_nothing(tmp_path):
    from paddy.errors import PaddyError
    from paddy.files import open_new
    p = tmp_path / 'out' / 'x.json'
    with pytest.raises(RuntimeError):
        with open_new(p) as f:
            f.write('{"half')
            raise RuntimeError('stopped')
    assert not list((tmp_path / 'out').iterdir())  # neither the file nor its temporary
    with pytest.raises(PaddyError, match='never overwritten'):
        with open_new(p) as f:
            f.write('mine')
            p.write_text('theirs')  # another process got there first
    assert p.read_text() == 'theirs' and [q.name for q in p.parent.iterdir()] == ['x.json']


def test_credentials_never_reach_logs_or_artefacts(comp, tiny_spec, monkeypatch):
    secret = 'sekr1t-0f-the-user'
    for var in ('KAGGLE_KEY', 'KAGGLE_API_TOKEN', 'WANDB_API_KEY', 'GITHUB_TOKEN'): monkeypatch.setenv(var, secret)
    monkeypatch.setenv('KAGGLE_USERNAME', 'someone')
    r = runner.invoke(app, ['train', str(tiny_spec), '--data', str(comp)])
    assert r.exit_code == 0, r.output
    files = [p for p in Path('.').rglob('*') if p.is_file() and p.suffix in ('.json', '.npz', '.pkl')]
    assert len(files) == 3 and secret not in r.output
    for p in files: assert secret.encode() not in p.read_bytes(), p
