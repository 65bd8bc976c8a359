"""Every finished run as one row, and each architecture's family."""
import pytest
from conftest import TINY
from paddy.results import family, repeats_of, row
from paddy.workspace import Workspace

SPECS = {'tiny_convnext': TINY, 'tiny_effnet': TINY.replace('test_convnext', 'test_efficientnet')}


@pytest.mark.parametrize('arch, fam', [
    ('convnext_small.fb_in22k', 'convnext'), ('convnext_large_in22k', 'convnext'), ('convnextv2_tiny', 'convnextv2'),
    ('vit_small_patch16_224.augreg_in21k', 'vit'), ('swinv2_base_window12_192.ms_in22k', 'swinv2'),
    ('swin_small_patch4_window7_224', 'swin'), ('resnet18', 'resnet'), ('resnet26d', 'resnetd'),
                                       ('regnety_040', 'regnet'),
    ('efficientnet_b0', 'efficientnet'), ('tf_efficientnet_lite0', 'efficientnet'), ('test_convnext', 'convnext'),
    ('levit_128', 'levit'), ('MyNet', 'mynet'), ('3dnet', '3dnet'), ('_x', '_x'), ('', ''),
])
def test_family_from_the_timm_name(arch, fam):
    assert family(arch) == fam


def test_a_field_added_later_keeps_older_runs_repeats_of_newer_ones():
    old = dict(name='a', arch='convnext_small', item_size=[640, 480], epochs=12, seed=42)  # before `compile` existed
    new = dict(old, compile=False, compile_mode='default', compile_backend='inductor', seed=7, aug_size=224)
    assert repeats_of(old) == repeats_of(new)
    assert repeats_of(dict(new, compile=True)) != repeats_of(new) != repeats_of(dict(new, epochs=1))


def test_the_techniques_off_keep_the_recipe_and_progressive_runs_show_their_last_size():
    old = dict(name='a', arch='convnext_small', aug_size=224, epochs=12, seed=42)  # before the techniques existed
    off = dict(old, mixup=0.0, cutmix=0.0, mix_switch=0.5, mix_off_epochs=0, label_smoothing=0.0, ema=0.0,
               aug_sizes=[])  # as a run's .json writes them
    assert (repeats_of(old) == repeats_of(off) != repeats_of(dict(off, ema=0.999))
            != repeats_of(dict(off, aug_sizes=[128, 224])))
    from paddy.record import RunRecord
    assert row(RunRecord(run='x', experiment=off))['size'] == '224'
    assert row(RunRecord(run='x', experiment=dict(off, aug_sizes=[[128, 96], [256, 192]])))['size'] == '256x192'


def test_the_fit_flag_reads_the_last_epochs_of_a_history():
    from paddy.results import fit_flag
    row = lambda t, v: dict(train_loss=t, valid_loss=v)  # noqa: E731
    assert fit_flag(None) is None and fit_flag([]) is None
    assert fit_flag([row(2.0, 1.5), row(1.6, 1.2)]) == 'underfits'  # still above validation at the end
    assert fit_flag([row(1.0, 0.9), row(0.5, 1.0), row(0.3, 1.1)]) == 'overfits'  # validation rose twice
    assert fit_flag([row(1.0, 1.2), row(0.8, 1.0), row(0.6, 1.1)]) == ''


def test_the_run_record_reads_older_records_and_refuses_newer_ones_in_one_line(tmp_path, capsys):
    import json
    from paddy.errors import PaddyError
    from paddy.record import SCHEMA, RunRecord, read_record, write_record
    from paddy.results import metas
    models = tmp_path / 'models'
    write_record(models / 'a-000001.json', RunRecord(run='a-000001', experiment=dict(name='a', arch='resnet18'),
                                                     error_rate=0.25, history=[dict(epoch=0, train_loss=1.0)]))
    back = read_record(models / 'a-000001.json')
    assert back.error_rate == 0.25 and back.name == 'a' and back.kind == 'seed' and back.schema == SCHEMA
    # a record written before the schema existed, with a key this paddy no longer knows: read, the key left out
    (models / 'b-000002.json').write_text(json.dumps(dict(run='b-000002', experiment=dict(name='b'), gone=1)))
    assert read_record(models / 'b-000002.json').run == 'b-000002'
    (models / 'c-000003.json').write_text(json.dumps(dict(run='c-000003', schema=SCHEMA + 1)))
    with pytest.raises(PaddyError, match=f'c-000003.json is a run record of schema {SCHEMA + 1}, newer than this '
                                         f"paddy's {SCHEMA}: upgrade paddy"):
        read_record(models / 'c-000003.json')
    assert [r.run for _, r in metas(Workspace(models=models))] == ['a-000001', 'b-000002']  # the others still are
    assert 'warning: skipping' in capsys.readouterr().err
