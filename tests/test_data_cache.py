"""The item cache and the DataLoaders over it: exact where it must be, rebuilt when an image changes, one
writer."""
import os, pickle, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner
from conftest import landscape
from paddy.cli import app
from paddy.data import cache as C
from paddy.data import dataloaders, read_train
from paddy.errors import PaddyError
from paddy.spec import Experiment

runner = CliRunner()


@pytest.fixture
def photos(rice):
    return sorted(str(p) for p in (rice / 'train_images').rglob('*.jpg'))[::15]  # 8 photos, 2 of each class


def fastai_resize(fn, item: C.Item) -> np.ndarray:
    "What fastai's default pipeline makes: PILImage.create, then Resize as in validation."
    from fastai.vision.all import PadMode, PILImage, Resize
    img = Resize(item.size, method=item.method, pad_mode=PadMode.Zeros)(PILImage.create(fn), split_idx=1)
    return np.asarray(img).transpose(2, 0, 1)


@pytest.mark.parametrize('method,size',
                         [('squish', (640, 480)), ('squish', (480, 480)), ('pad', (480, 480)), ('squish', (64, 64)),
                          ('pad', (48, 64))])
def test_cached_equals_uncached_pixel_for_pixel(photos, tmp_path, method, size):
    item = C.Item(method, size)
    cache = C.build(photos, item, tmp_path / 'items')
    for f in photos:
        got, fresh = cache.get(f), C.decode(f, item)
        assert got.dtype == np.uint8 and got.shape == (3, *size)
        assert np.array_equal(got, fresh)
        ref = fastai_resize(f, item)
        if min(640 // size[0], 480 // size[1]) < 2:
            assert np.array_equal(got, ref)  # no reduced decode: fastai's very pixels
        else:
            # a reduced-scale decode: the same picture, not the same bytes
            assert np.abs(got.astype(int) - ref).mean() < 3


def test_dataloaders_with_and_without_the_cache_agree(comp, tmp_path, monkeypatch):
    df = read_train(comp)
    for resize_ in ('squish', 'pad'):
        exp = Experiment(name='x', arch='test_convnext', resize=resize_, item_size=(32, 40), aug_size=32)
        monkeypatch.setenv('PADDY_ITEM_CACHE', str(tmp_path / 'items'))
        on = dataloaders(df, exp, [], 4)
        off = dataloaders(df, exp, [], 4, cache=False)
        assert on.item_cache is not None and len(on.item_cache) == 36 and off.item_cache is None
        for i in range(len(df)):
            a, b = on.train_ds[i][0], off.train_ds[i][0]
            assert a.dtype == b.dtype == __import__('torch').uint8 and a.shape == (3, 32, 40) and (a == b).all()
    monkeypatch.setenv('PADDY_ITEM_CACHE', 'off')
    assert dataloaders(df, exp, [], 4).item_cache is None


def test_crop_keeps_its_random_training_crop(comp):
    import torch
    exp = Experiment(name='x', arch='test_convnext', resize='crop', item_size=(24, 24), aug_size=24)
    df = read_train(comp)
    dls = dataloaders(df, exp, df.image_id[:6].tolist(), 4)
    full = torch.from_numpy(dls.item_cache.get(dls.train_ds.items[0]))
    assert tuple(full.shape) == (3, 32, 24)  # 36×48 scaled to cover 24×24, whole
    for dl in (dls.train, dls.valid): dl.before_iter()  # as iterating does: it gives the item transforms their split
    crops = {dls.train.do_item(0)[0].numpy().tobytes() for _ in range(30)}  # the loader applies the item transforms
    assert len(crops) > 1 and all(len(c) == 3 * 24 * 24 for c in crops)
    centre = dls.valid.do_item(0)[0]
    whole = torch.from_numpy(dls.item_cache.get(dls.valid_ds.items[0]))
    assert (centre == whole[:, 4:28, :]).all() and (dls.valid.do_item(0)[0] == centre).all()


@pytest.mark.parametrize('method', ['squish', 'crop'])
def test_workers_build_the_same_cache_as_one_process(comp, tmp_path, method):
    landscape(comp)  # a crop of it has another shape than the rest
    files, item = read_train(comp).path.tolist(), C.Item(method, (24, 24))
    one, many = C.build(files, item, tmp_path / 'one', workers=0), C.build(files, item, tmp_path / 'many', workers=2)
    for f in files: assert np.array_equal(one.get(f), many.get(f)) and np.array_equal(one.get(f), C.decode(f, item))
    assert {one.get(f).shape for f in files} == ({(3, 24, 24)} if method == 'squish' else {(3, 32, 24), (3, 24, 32)})


def test_an_image_that_changes_is_rebuilt(comp, tmp_path):
    files = read_train(comp).path.tolist()
    item, where = C.Item('squish', (32, 32)), tmp_path / 'items'
    old = C.build(files, item, where, data=str(comp))
    f = files[5]
    before = old.get(f)
    Image.fromarray(np.full((48, 36, 3), 200, np.uint8)).save(f)
    st = os.stat(f)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # as a copy made a second later would be
    new = C.build(files, item, where, data=str(comp))
    assert new.folder != old.folder and not old.folder.exists()  # the stale one is removed, not left to fill the disk
    assert np.array_equal(new.get(f), C.decode(f, item)) and not np.array_equal(new.get(f), before)
    assert (new.get(f) == 200).all()
    assert np.array_equal(new.get(files[0]), C.decode(files[0], item))
    st = os.stat(f)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # rewritten with the same length: only the time tells
    assert C.build(files, item, where, data=str(comp)).folder != new.folder


def test_runs_started_together_build_once(comp, tmp_path):
    files = read_train(comp).path.tolist()
    go = tmp_path / 'go'
    code = ("import sys, time; from pathlib import Path; from paddy.data import cache as C; "
            f"Path(sys.argv[1]).touch()\nwhile not Path({str(go)!r}).exists(): time.sleep(0.005)\n"
            f"C.build(sys.argv[2:], C.Item('squish', (64, 64)), Path({str(tmp_path / 'items')!r}))")
    ready = [tmp_path / f'ready{i}' for i in range(3)]
    procs = [subprocess.Popen([sys.executable, '-c', code, str(r), *files], stderr=subprocess.PIPE,
                              text=True) for r in ready]
    while not all(r.exists() for r in ready): __import__('time').sleep(0.01)
    go.touch()  # all three reach build() within milliseconds of each other
    logs = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), logs
    assert sum('item cache: built' in l for l in logs) == 1 and sum('item cache: reusing' in l for l in logs) == 2, logs
    assert [p.name for p in (tmp_path / 'items').iterdir() if p.is_dir()] == [C.key(files, C.Item('squish', (64, 64)))]


def test_train_warns_of_the_other_orientation_and_records_its_settings(comp, tiny_spec, capsys):
    from paddy.spec import load
    from paddy.train import Settings, train
    landscape(comp)
    meta = train(load(str(tiny_spec), ['item_size=(64, 48)', 'aug_size=(64, 32)']), Settings(data=comp))
    err = capsys.readouterr().err
    assert ('warning: 1 training images are not portrait like item_size (64, 48), so they will be squished '
            '(dog002.jpg)' in err)
    assert meta['item_cache']
    assert Path(meta['item_cache']).is_dir()
    # without CUDA the training batches come from the host's memory map, and nothing was tried on a device
    assert (meta['item_cache_where'], meta['item_cache_why']) == ('host', None)
    assert meta['precision'] == 'fp32'
    assert meta['channels_last'] is False
    meta = train(load(str(tiny_spec)), Settings(data=comp, cache=False))
    assert meta['item_cache'] is None and 'not portrait' not in capsys.readouterr().err
    assert meta['item_cache_where'] is None


def test_a_pickled_cache_whose_folder_is_gone_holds_nothing(comp, tmp_path):
    import shutil
    files = read_train(comp).path.tolist()
    cache = C.build(files, C.Item('squish', (32, 32)), tmp_path / 'items')
    again = pickle.loads(pickle.dumps(cache))
    assert np.array_equal(again.get(files[0]), cache.get(files[0]))
    blob = pickle.dumps(cache)
    assert len(blob) < 1000  # the folder's name, not its images
    shutil.rmtree(cache.folder)
    assert pickle.loads(blob).get(files[0]) is None


def test_no_room_for_the_cache_says_how_to_go_without(comp, tmp_path, monkeypatch):
    import shutil
    monkeypatch.setattr(shutil, 'disk_usage', lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(PaddyError, match='needs .* but 0.0 MB is free: .*PADDY_ITEM_CACHE=DIR.*--no-cache'):
        C.build(read_train(comp).path.tolist(), C.Item('squish', (32, 32)), tmp_path / 'items')


def test_batches_reach_the_device_as_uint8_and_leave_as_float(comp):
    exp = Experiment(name='x', arch='test_convnext', item_size=32, aug_size=32)
    dl = dataloaders(read_train(comp), exp, [], 4).train
    seen, after = [], dl.after_batch
    dl.after_batch = lambda b: (seen.append(b[0].dtype), after(b))[1]
    xb, yb = dl.one_batch()
    import torch
    assert seen == [torch.uint8] and xb.dtype == torch.float32 and 0 <= float(xb.min()) and float(xb.max()) <= 1


def test_cache_command_shows_where_and_how_big(comp, tmp_path, monkeypatch):
    monkeypatch.setenv('PADDY_ITEM_CACHE', str(tmp_path / 'items'))
    C.build(read_train(comp).path.tolist(), C.Item('pad', (32, 32)), tmp_path / 'items', data=str(comp))
    r = runner.invoke(app, ['cache'])
    assert r.exit_code == 0 and f"{tmp_path / 'items'}: 1 cached image sets" in r.output and 'pad (32, 32)' in r.output
    assert str(comp) in r.output and '36' in r.output
    r = runner.invoke(app, ['cache', '--clear'])
    assert r.exit_code == 0 and 'removed' in r.output and not (tmp_path / 'items').exists()
    monkeypatch.setenv('PADDY_ITEM_CACHE', 'off')
    assert 'is off' in runner.invoke(app, ['cache']).output


def test_a_damaged_cache_is_built_again_and_listed_as_damaged(comp, tmp_path, monkeypatch, capsys):
    files, item, where = read_train(comp).path.tolist(), C.Item('squish', (32, 32)), tmp_path / 'items'
    monkeypatch.setenv('PADDY_ITEM_CACHE', str(where))
    c = C.build(files, item, where)
    meta = c.folder / 'meta.json'
    meta.write_text(meta.read_text()[:50])  # a disk that filled as it was written, say
    assert 'damaged: built again' in runner.invoke(app, ['cache']).output
    again = C.build(files, item, where)
    assert 'is damaged; building it again' in capsys.readouterr().err
    assert len(again) == len(files) and np.array_equal(again.get(files[3]), C.decode(files[3], item))
    (c.folder / 'spans.npy').write_bytes(b'')  # another part gone
    assert len(C.build(files, item, where)) == len(files)


def test_clear_leaves_a_build_in_progress(comp, tmp_path, monkeypatch):
    import fcntl
    where = tmp_path / 'items'
    monkeypatch.setenv('PADDY_ITEM_CACHE', str(where))
    done = C.build(read_train(comp).path.tolist(), C.Item('pad', (32, 32)), where)
    live = where / 'abcdef0123456789.tmp-999'
    live.mkdir()
    (live / 'pixels.u8').write_bytes(b'x' * 100)
    with open(where / 'abcdef0123456789.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as the building process holds it
        r = runner.invoke(app, ['cache', '--clear'])
    assert r.exit_code == 0 and 'being built now (abcdef0123456789)' in r.output, r.output
    assert (live / 'pixels.u8').exists() and (where / 'abcdef0123456789.lock').exists() and not done.folder.exists()
    r = runner.invoke(app, ['cache', '--clear'])  # once the build has ended (here: its lock is free)
    assert r.exit_code == 0 and not where.exists()


def _inherited(_):
    "Whether this worker process inherited the parent's memory (a fork) rather than starting afresh (a spawn)."
    from paddy.data import pool
    return hasattr(pool, 'set_by_the_parent')


def test_pool_workers_are_spawned_not_forked(monkeypatch):
    "A fork of a process whose torch threads have started (inside `paddy train`) can hang: the pool spawns."
    from paddy.data import pool
    monkeypatch.setattr(pool, 'set_by_the_parent', True, raising=False)
    assert pool.pmap(_inherited, range(4), 2, 'test', chunksize=1, serial_below=0) == [False] * 4
