"""`paddy check`: every kind of broken competition folder is named, one line each, before any training starts."""
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from paddy.cli import app
from paddy.data.verify import ensure, verify
from paddy.errors import PaddyError

runner = CliRunner()


def lines(r) -> list[str]:
    return [l for l in r.output.strip().splitlines() if l]


def truncate(p: Path):
    "Cut the end off `p`, as a stopped download does: its header still reads."
    p.write_bytes(p.read_bytes()[:-200])


def digest(folder: Path) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob('*')) if p.is_file()}


def test_a_good_folder_has_no_problems(comp):
    r = runner.invoke(app, ['check', '--data', str(comp)])
    assert r.exit_code == 0 and lines(r) == [f'{comp}: no problems']
    r = runner.invoke(app, ['check', '--data', str(comp), '--deep'])
    assert r.exit_code == 0 and 'every image decoded' in r.output


def test_every_problem_is_named_on_its_own_line(comp):
    truncate(comp / 'train_images' / 'cat' / 'cat003.jpg')
    (comp / 'train_images' / 'dog' / 'dog004.jpg').rename(comp / 'train_images' / 'fish' / 'dog004.jpg')
    (comp / 'train_images' / 'fish' / 'fish005.jpg').unlink()
    Image.fromarray(np.zeros((48, 36, 3), np.uint8)).save(comp / 'train_images' / 'cat' / 'stray.jpg')
    # grayscale: a note
    Image.fromarray(np.zeros((48, 36), np.uint8)).save(comp / 'train_images' / 'dog' / 'dog001.jpg')
    (comp / 'train_images' / 'emu').mkdir()
    df = pd.read_csv(comp / 'train.csv')
    pd.concat([df, pd.DataFrame([dict(image_id='yak000.jpg', label='yak')])]).to_csv(comp / 'train.csv', index=False)
    (comp / 'test_images' / 't001.jpg').unlink()
    Image.fromarray(np.zeros((48, 36, 3), np.uint8)).save(comp / 'test_images' / 'extra.jpg')
    before = digest(comp)
    r = runner.invoke(app, ['check', '--data', str(comp)])
    assert r.exit_code == 2 and 'Traceback' not in r.output
    out = lines(r)
    expect = ["train.csv: label 'yak' has no folder train_images/yak/",
              'train_images/emu/: holds no images',
              'train.csv: dog004.jpg is labelled dog but lies in train_images/fish/',
              'train.csv: fish005.jpg (fish) is not under train_images/',
              'train_images/cat/stray.jpg: is not in train.csv',
              'sample_submission.csv: t001.jpg is not in test_images/',
              'test_images/extra.jpg: is not in sample_submission.csv',
              'train_images/cat/cat003.jpg: truncated (no JPEG end-of-image marker)',
              'train_images/dog/dog001.jpg: is JPEG in mode L, not an RGB JPEG: paddy converts it to RGB']
    for e in expect: assert sum(e in l for l in out) == 1, (e, out)
    assert len(out) == len(expect)
    assert [l.split(':')[0] for l in out if 'stray' in l or 'dog001' in l] == ['note', 'note']
    assert digest(comp) == before  # a check changes nothing


def test_deep_decodes_what_the_fast_form_lets_through(comp):
    bad = comp / 'train_images' / 'cat' / 'cat002.jpg'
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 36, 3), dtype=np.uint8)).save(bad, format='PNG')
    data = bytearray(bad.read_bytes())
    data[data.index(b'IDAT') + 40] ^= 0xFF  # its header and end chunk are whole; one byte of its pixels is not
    bad.write_bytes(bytes(data))
    png = comp / 'train_images' / 'dog' / 'dog003.jpg'
    Image.fromarray(np.zeros((48, 36, 4), np.uint8)).save(png, format='PNG')  # an RGBA PNG by a .jpg name
    fast = [str(x) for x in verify(comp)]
    assert fast == ['train_images/cat/cat002.jpg: is PNG in mode RGB, not an RGB JPEG: paddy converts it to RGB',
                    'train_images/dog/dog003.jpg: is PNG in mode RGBA, not an RGB JPEG: paddy converts it to RGB']
    deep = [str(x) for x in verify(comp, deep=True) if x.fatal]
    assert deep == ['train_images/cat/cat002.jpg: unreadable (OSError: broken data stream when reading image file): '
                    'replace it (re-download) or remove it and its row']
    (comp / 'test_images').rename(comp / 'gone')
    (comp / 'test_images').mkdir()
    assert 'test_images/: is empty: re-extract the data' in [str(x) for x in verify(comp)]


def test_train_stops_before_the_first_epoch_on_a_truncated_image(comp, tiny_spec):
    truncate(comp / 'train_images' / 'fish' / 'fish007.jpg')
    r = runner.invoke(app, ['train', str(tiny_spec), '--data', str(comp)])
    assert r.exit_code == 2 and 'Traceback' not in r.output
    out = lines(r)
    assert (out[0] == 'paddy: error: train_images/fish/fish007.jpg: truncated (no JPEG end-of-image marker): replace '
                      'it (re-download) or remove it and its row')
    assert out[-1].startswith('paddy: error: 1 problems in') and 'paddy check --deep' in out[-1]
    assert not Path('models').exists() and 'epoch' not in r.output


def test_sweep_checks_the_data_before_any_run(comp, tiny_spec):
    truncate(comp / 'test_images' / 't004.jpg')
    r = runner.invoke(app, ['sweep', str(tiny_spec), '--data', str(comp)])
    assert r.exit_code == 2 and 'test_images/t004.jpg: truncated' in r.output and not Path('sweeps').exists()


def test_an_empty_test_folder_is_one_line_and_long_lists_are_counted(comp):
    for f in (comp / 'test_images').iterdir(): f.unlink()
    r = runner.invoke(app, ['check', '--data', str(comp)])
    assert r.exit_code == 2 and lines(r) == ['paddy: error: test_images/: is empty: re-extract the data']
    make_comp_tests(comp, 6)  # back again, and 31 ids more in sample_submission.csv than there are images
    sample = pd.read_csv(comp / 'sample_submission.csv')
    extra = pd.DataFrame({'image_id': [f'gone{i:02d}.jpg' for i in range(31)], 'label': 'normal'})
    pd.concat([sample, extra]).to_csv(comp / 'sample_submission.csv', index=False)
    with pytest.raises(PaddyError) as e: ensure(comp)
    out = str(e.value).splitlines()
    assert len(out) == 22
    assert out[20] == '…: and 11 more ids of sample_submission.csv are not in test_images/: re-extract the data'
    assert out[-1].startswith(f'31 problems in {comp}')


def make_comp_tests(comp: Path, n: int):
    "Put `n` test images back, as conftest's make_comp names them."
    for j in range(n): Image.fromarray(np.zeros((48, 36, 3), np.uint8)).save(comp / 'test_images' / f't{j:03d}.jpg')


def test_a_folder_is_checked_once_a_process_until_a_file_changes(comp, monkeypatch):
    import os
    from paddy.data import verify as V
    calls = []
    real = V.verify
    monkeypatch.setattr(V, 'verify', lambda *a, **k: calls.append(1) or real(*a, **k))
    for _ in range(3): V.ensure(comp)  # a CV run's folds and its final fit, say
    assert len(calls) == 1
    f = next((comp / 'train_images' / 'cat').iterdir())
    st = os.stat(f)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # rewritten in place
    V.ensure(comp)
    assert len(calls) == 2
