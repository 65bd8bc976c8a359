"""The resized copy: the layout kept, smaller images, resumable, and nothing clobbered."""
import hashlib, json
from pathlib import Path
import pytest
from typer.testing import CliRunner
from conftest import landscape
from paddy.cli import app
from paddy.data import find_data, read_train
from paddy.data.resize import resize
from paddy.data.sizes import census
from paddy.errors import PaddyError

runner = CliRunner()


def digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob('*')) if p.is_file()}


def test_resize_copies_the_layout_smaller_and_leaves_the_originals(comp, tmp_path):
    landscape(comp, 'cat001.jpg')
    before = digest(comp)
    r = runner.invoke(app, ['resize', '--max-size', '24', '--data', str(comp), '--dest', str(tmp_path / 'small')])
    assert r.exit_code == 0, r.output
    assert digest(comp) == before
    small = find_data(tmp_path / 'small')
    sizes = census(small)
    assert len(sizes) == 42 and set(zip(sizes.width, sizes.height)) == {(18, 24), (24, 18)}
    assert sizes.set_index('image_id').loc['cat001.jpg', 'orientation'] == 'landscape'
    assert (small / 'train.csv').read_bytes() == (comp / 'train.csv').read_bytes()
    meta = json.loads((small / 'paddy-resize.json').read_text())
    assert meta['source'] == str(comp.resolve()) and meta['max_size'] == 24 and meta['complete']
    assert meta['images'] == 42 and meta['versions']['paddy']


def test_resize_stopped_then_resumed_redoes_nothing(comp, tmp_path, monkeypatch):
    import paddy.data.resize as R
    done, real = [], R.shrink
    def stop_after_10(src, dest, max_size):
        if len(done) == 10: raise KeyboardInterrupt
        done.append(dest)
        return real(src, dest, max_size)
    monkeypatch.setattr(R, 'shrink', stop_after_10)
    dest = tmp_path / 'small'
    with pytest.raises(KeyboardInterrupt): resize(comp, dest, 24)
    assert len(list(dest.rglob('*.jpg'))) == 10 and not list(dest.rglob('.*.tmp'))
    with pytest.raises(PaddyError, match='lacks train.csv'): find_data(dest)  # a stopped copy is never taken for whole
    stamps = {p: p.stat().st_mtime_ns for p in done}
    done.clear()
    monkeypatch.setattr(R, 'shrink', lambda *a: (done.append(a[1]), real(*a))[1])
    resize(comp, dest, 24)
    assert len(done) == 32 and not set(done) & set(stamps)  # only the 32 left were made
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert len(read_train(find_data(dest))) == 36
    assert json.loads((dest / 'paddy-resize.json').read_text())['done_before'] == 10


def test_resize_refuses_what_it_would_clobber(comp, tmp_path):
    with pytest.raises(PaddyError, match='inside the data it copies'): resize(comp, comp / 'small', 24)
    with pytest.raises(PaddyError, match='not a copy that paddy resize made'): resize(comp, comp.parent, 24)
    resize(comp, tmp_path / 'small', 24)
    with pytest.raises(PaddyError, match='is a copy of .* at --max-size 24: choose another --dest'):
        resize(comp, tmp_path / 'small', 32)


def test_a_damaged_stamp_is_one_line_and_the_copy_is_kept(comp, tmp_path):
    small = tmp_path / 'small'
    args = ['resize', '--max-size', '24', '--data', str(comp), '--dest', str(small)]
    assert runner.invoke(app, args).exit_code == 0
    (small / 'paddy-resize.json').write_text('{"source": "/x", "max_')  # cut short
    before = digest(small)
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert 'paddy-resize.json is damaged' in r.output and f'delete {small}' in r.output
    assert len(r.output.strip().splitlines()) == 1 and digest(small) == before
