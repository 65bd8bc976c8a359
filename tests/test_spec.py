import re
import timm
import pytest

from paddy.errors import PaddyError
from paddy.spec import Experiment, available, hw, load
from paddy.train.learner import _torchvision, check_experiment

SHIPPED = available()


def test_seed_experiments_are_shipped():
    need = {'convnext_small_squish', 'convnext_small_crop', 'convnext_small_pad', 'convnext_small_rect',
            'vit_small_squish',
            'vit_small_pad', 'swinv2_base_squish', 'swin_small_squish', 'convnext_large_rect', 'vit_large_squish',
            'swinv2_large_squish', 'swin_large_squish', 'demo_lite0', 'demo_scratch'}
    assert need <= set(SHIPPED)


@pytest.mark.parametrize('name', SHIPPED)
def test_every_experiment_loads_and_validates(name):
    exp = load(name)
    assert exp.name == name
    assert timm.is_model(exp.arch)
    check_experiment(exp)
    cfg = timm.models.get_pretrained_cfg(exp.arch)
    if cfg.fixed_input_size: assert hw(exp.aug_size) == tuple(cfg.input_size[1:])


def test_large_models_accumulate_two_micro_batches():
    for n in ('convnext_large_rect', 'vit_large_squish', 'swinv2_large_squish', 'swin_large_squish'):
        assert load(n).accum == 2 and load(n).bs == 64


def test_variant_changes_only_what_it_sets():
    base, rect = load('convnext_small_squish'), load('convnext_small_rect')
    assert rect.item_size == (640, 480) and rect.aug_size == (288, 224)
    assert {k for k in vars(base) if getattr(base, k) != getattr(rect, k)} == {'name', 'item_size', 'aug_size'}


def test_overrides_keep_types():
    exp = load('convnext_small_rect',
               ['epochs=1', 'lr=1', 'pretrained=False', 'seed=None', 'aug_size=(320,224)', 'arch=resnet18'])
    assert exp.epochs == 1 and type(exp.epochs) is int
    assert exp.lr == 1.0 and type(exp.lr) is float
    assert exp.pretrained is False and exp.seed is None
    assert exp.aug_size == (320, 224) and exp.arch == 'resnet18'
    assert load('demo_lite0', ['pretrained=/some/file.pth']).pretrained == '/some/file.pth'


@pytest.mark.parametrize('override,msg', [('epoch=1', "unknown field 'epoch' (did you mean 'epochs'?)"),
                                          ('epochs=1.5', 'epochs=1.5 must be of type int'),
                                          ('epochs=True', 'must be of type int'),
                                          ('accum', 'write it as --set field=value')])
def test_bad_overrides_are_errors(override, msg):
    with pytest.raises(PaddyError, match=re.escape(msg)): load('convnext_small_squish', [override])


def test_unknown_field_in_a_file_is_an_error(tmp_path):
    (tmp_path / 'typo.py').write_text("arch = 'resnet18'\nepoch = 3\n")
    with pytest.raises(PaddyError, match="typo.py: unknown field 'epoch'"): load(str(tmp_path / 'typo.py'))


def test_unknown_experiment_names_close_matches():
    with pytest.raises(PaddyError, match='did you mean convnext_small_rect'): load('convnext_small_rec')


def test_unknown_arch_names_close_matches():
    with pytest.raises(PaddyError, match="unknown arch 'convnxt_small'; close matches: convnext_small"):
        check_experiment(load('convnext_small_squish', ['arch=convnxt_small']))


def test_unknown_pretrained_tag_is_an_error():
    with pytest.raises(PaddyError, match='no pretrained tag'):
        check_experiment(load('convnext_small_squish', ['arch=convnext_small.nope']))


def test_vit_cannot_take_another_size():
    with pytest.raises(PaddyError, match=r'only takes 224×224 input but aug_size is 288×288: set aug_size = 224'):
        check_experiment(load('vit_small_squish', ['aug_size=288']))
    with pytest.raises(PaddyError,
                       match='only takes 192×192'): check_experiment(load('swinv2_base_squish', ['aug_size=(288,224)']))


def test_convnext_takes_rectangles():
    assert check_experiment(load('convnext_small_rect')) == []


def test_side_not_multiple_of_32_warns(capsys):
    msgs = check_experiment(load('convnext_small_squish', ['aug_size=(300,224)']))
    assert len(msgs) == 1 and 'aug_size=(300, 224)' in msgs[0]
    assert 'not a multiple of 32' in capsys.readouterr().err


def test_torchvision_arch_is_accepted(comp):
    import torchvision
    from paddy.data import dataloaders, read_train
    from paddy.train.learner import learner
    from paddy.train.weights import Weights
    exp = Experiment(name='x', arch='squeezenet1_1', pretrained=False, item_size=32, aug_size=32)  # not in timm
    assert not timm.is_model(exp.arch) and _torchvision(exp.arch) is torchvision.models.squeezenet1_1
    assert check_experiment(exp) == []
    learn = learner(dataloaders(read_train(comp), exp, [], 4), exp, Weights(False))
    assert any(type(m).__name__ == 'Fire' for m in learn.model.modules())  # squeezenet's own block


@pytest.mark.parametrize('field,value',
                         [('resize', "'stretch'"), ('accum', '3'), ('valid_pct', '1.5'), ('epochs', '0'),
                          ('aug_size', '(0,224)')])
def test_impossible_values_are_errors(field, value):
    with pytest.raises(PaddyError, match=field.split('_')[-1]):
        check_experiment(load('convnext_small_squish', [f'{field}={value}']))


def test_a_recipe_is_its_fields_however_made_and_a_field_added_later_leaves_it():
    from dataclasses import asdict
    from paddy.spec import recipe
    exp = load('convnext_small_rect')
    assert recipe(exp) == recipe(asdict(exp)) == recipe(load('convnext_small_rect', ['epochs=12']))  # 12: its own
    assert recipe(load('convnext_small_rect', ['lr=0.002'])) != recipe(exp)
    older = {k: v for k, v in asdict(exp).items() if k != 'deterministic'}  # recorded before the field existed
    assert recipe(older) == recipe(exp)
