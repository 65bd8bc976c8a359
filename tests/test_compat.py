"""What paddy relies on in libraries' private APIs (paddy/compat.py), checked against the installed releases: a new
fastai, fastprogress, torch, Ray or Pillow that changes one fails here, not silently in a run."""
import pytest


def test_fastprogress_still_has_the_bar_switch_and_its_own_print(monkeypatch):
    import fastprogress.fastprogress as fp
    from paddy import compat
    assert hasattr(fp, 'NO_BAR') and callable(fp.print) and callable(fp.WRITER_FN)
    monkeypatch.setattr(fp, 'NO_BAR', False)
    monkeypatch.setattr(fp, 'print', fp.print)
    compat.fastprogress_plain()
    assert fp.NO_BAR is True and fp.print('█') is None


def test_fastais_distributed_loader_still_broadcasts_through_one_method(monkeypatch):
    from fastai.distributed import DistributedDL
    from paddy import compat
    assert callable(DistributedDL._broadcast)
    monkeypatch.setattr(DistributedDL, '_broadcast', DistributedDL._broadcast)
    compat.distributed_broadcast(mine := lambda self, t, rank: t)
    assert DistributedDL._broadcast is mine


def test_torch_compile_still_lists_backends_and_calls_back_and_keeps_its_call():
    import torch.nn as nn
    from paddy import compat
    assert 'inductor' in compat.dynamo_backends() and 'aot_eager' in compat.dynamo_backends(debug=True)
    with compat.compile_callbacks(print, print): pass  # registers and removes without error
    m = nn.Linear(2, 2)
    m.compile(backend='aot_eager')
    assert m.__dict__.get('_compiled_call_impl') is not None  # where nn.Module.compile keeps its compiled call
    with compat.uncompiled(m): assert m._compiled_call_impl is None
    assert m._compiled_call_impl is not None


def test_rays_address_lookup_is_still_there():
    pytest.importorskip('ray')
    from paddy import compat
    assert callable(compat.ray_auto_address())


def test_fastais_progress_and_skip_callbacks_still_keep_what_paddy_reads():
    from fastai.learner import SkipToEpoch
    from paddy import compat
    assert isinstance(compat.progress_state('slots'), tuple) and compat.progress_state('slots')[-1] == 'slots'
    assert compat.skip_to(SkipToEpoch(3)) == 3


def test_pillow_still_makes_a_plain_image_of_a_jpeg(tmp_path):
    from PIL import Image, JpegImagePlugin
    from paddy import compat
    Image.new('RGB', (8, 6), 'red').save(tmp_path / 'a.jpg')
    with Image.open(tmp_path / 'a.jpg') as im:
        im.load()
        assert isinstance(im, JpegImagePlugin.JpegImageFile)
        plain = compat.plain_image(im)
    assert type(plain) is Image.Image and plain.size == (8, 6) and plain.getpixel((0, 0))[0] > 200
