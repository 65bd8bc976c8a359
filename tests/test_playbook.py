"""`paddy playbook` end to end on tiny models: stopped with SIGTERM in its final sweep, run again, it finishes without
retraining a finished run, and its submission checks out; the planner drops what would not fit, and `--dry-run` trains
nothing."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paddy.cli import app
from paddy.playbook import plan as P
from paddy.playbook.book import load_playbook
from paddy.spec import load as load_experiment

BOOK = """candidates = ['{spec}', ('{spec}', ['lr=0.02'])]
screen_size = 24
screen_sets = ['item_size=32', 'aug_size=32']
screen_epochs = 1
top = 1
final_sets = ['item_size=32', 'aug_size=32']
final_epochs = 1
repeat = 2
select = 'greedy'
"""


@pytest.fixture
def book(tiny_spec):
    p = Path('tinybook.py')
    p.write_text(BOOK.format(spec=tiny_spec))
    return p


def runs_of(sweep: str) -> dict[str, list]:
    "Job → the finished runs of `sweep` in models/ (more than one would be a retrained job)."
    out = {}
    for f in Path('models').glob('*.json'):
        tag = str(json.loads(f.read_text()).get('sweep') or '')
        if tag.startswith(f'{sweep}/'): out.setdefault(tag.split('/', 1)[1], []).append(f.stem)
    return out


@pytest.mark.slow
def test_a_playbook_stopped_in_its_final_sweep_finishes_without_retraining(comp, book):
    cmd = [sys.executable, '-m', 'paddy.cli', 'playbook', str(book), '--data', str(comp), '--hours', '1']
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                         start_new_session=True)
    lines, t0, final = [], time.time(), False
    try:
        for line in p.stdout:  # the first final run finished, the second under way: stop the whole group
            lines.append(line)
            final = final or 'stage 5 of 7, final' in line
            if final and line.strip().startswith('[1/2]'):
                os.killpg(p.pid, signal.SIGTERM)
                break
            assert time.time() - t0 < 400, ''.join(lines)
        out = ''.join(lines) + p.communicate(timeout=120)[0]
    finally:
        if p.poll() is None: os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode != 0 and final, out
    state = json.loads(Path('playbooks/tinybook-comp/state.json').read_text())
    assert 'rank' in state['stages'] and 'final' not in state['stages'], state
    screened, finals = runs_of('tinybook-comp-screen'), runs_of('tinybook-comp-final')
    assert len(screened) == 2 and len(finals) == 1, (screened, finals)

    r = CliRunner().invoke(app, ['playbook', str(book), '--data', str(comp), '--hours', '1'])
    assert r.exit_code == 0, r.output
    assert 'continuing at stage 5, final' in r.output
    assert runs_of('tinybook-comp-screen') == screened  # no screening run again
    again = runs_of('tinybook-comp-final')
    assert len(again) == 2 and all(len(v) == 1 for v in again.values()), again
    assert {k: v for k, v in again.items() if k in finals} == finals  # the finished final run was not retrained
    state = json.loads(Path('playbooks/tinybook-comp/state.json').read_text())
    csv = state['stages']['ensemble']['csv']
    assert 'ready to submit' in state['stages']['submit']['checked']
    r = CliRunner().invoke(app, ['check-submission', csv, '--data', str(comp)])
    assert r.exit_code == 0 and 'ready to submit' in r.output, r.output
    summary = Path('playbooks/tinybook-comp/summary.md').read_text()
    assert '## Candidates (screening)' in summary and csv in summary
    assert '2 of 2 candidates screened within 20% of the budget' in summary and '## Chosen' in summary
    assert 'Final runs: ' in summary  # the epochs the budget gave, and why
    r = CliRunner().invoke(app, ['playbook', str(book), '--data', str(comp), '--status'])
    assert r.exit_code == 0 and 'submit    done' in r.output, r.output


def test_the_planner_drops_a_run_that_would_not_fit():
    runs = [P.Estimate('a', 600, 'm'), P.Estimate('b', 3000, 'm'), P.Estimate('c', 900, 'm')]
    keep, drop = P.fit(runs, 1800)
    assert [e.label for e in keep] == ['a', 'c'] and [e.label for e in drop] == ['b']
    keep, drop = P.fit(runs, 1800, devices=2)  # side by side, b still runs too long, c takes the free device
    assert [e.label for e in keep] == ['a', 'c'] and [e.label for e in drop] == ['b']
    assert 'drop  b: 50.0 min' in P.table(keep, drop, 1800) and 'in the 30.0 min left' in P.table(keep, drop, 1800)


def test_estimates_scale_by_pixels_epochs_and_folds(tiny_spec):
    small = load_experiment(str(tiny_spec), ['aug_size=32', 'epochs=2'])
    big = load_experiment(str(tiny_spec), ['aug_size=64', 'epochs=4'])
    rate = P.cost(small) * 100  # 100 images a second of the small one
    a = P.estimate(small, 'a', 1000, 0, rate, 'm', pretrained=False)
    b = P.estimate(big, 'b', 1000, 0, rate, 'm', pretrained=False)
    tta_a, tta_b = P.tta(small, 200, 0, rate), P.tta(big, 200, 0, rate)
    assert a.seconds == pytest.approx(800 * 2 / 100 + tta_a)  # 800 training images, 2 epochs, at 100 img/s
    # 4× the pixels cost a little more than 4× (measured on a CPU); and 2× the epochs
    ratio = 4 ** P.PIXEL_POWER
    assert (b.seconds - tta_b) / (a.seconds - tta_a) == pytest.approx(ratio * 2) and 4 < ratio < 5
    assert tta_b / tta_a == pytest.approx(ratio)
    # the CPU prior: Lite0 at 59 img/s at 96 px, and about 13 at 192 px, as measured
    lite = load_experiment('efficientnet_lite0', ['aug_size=192'])
    assert P.PRIOR_PX_PER_S['cpu'] / P.cost(lite) == pytest.approx(12.9, abs=0.3)
    cv = P.estimate(small, 'cv', 1000, 0, rate, 'm', folds=5, pretrained=False)
    assert cv.runs == 5 and cv.seconds > 4.9 * a.seconds


def test_a_final_runs_rate_comes_from_a_probe_of_both_sizes(tiny_spec):
    from dataclasses import replace
    from paddy.playbook.stages import probed
    from paddy.train.probe import slowdown
    small = load_experiment(str(tiny_spec), ['item_size=32', 'aug_size=32', 'bs=4'])
    large = load_experiment(str(tiny_spec), ['item_size=256', 'aug_size=256', 'epochs=3', 'bs=4'])
    k = slowdown(small, large)  # real training steps of test_convnext at both sizes, measured once
    # 64 times the pixels, in a model so small that a step's fixed costs weigh: about 4 alone on 2 cores, less with the
    # other test processes beside it
    assert k > 1.5
    px, source = probed(small, large, P.cost(small) * 100, 'its screening run s-1')  # 100 img/s at 32 px
    assert P.cost(large) / px == pytest.approx(k / 100)  # seconds an image at 256 px: the probe's k times 1/100
    assert source == f'its screening run s-1, ×{k:.1f} a step at the final size by a probe'
    assert probed(small, replace(small, epochs=5), 7.0, 's') == (7.0, 's')  # one size: nothing to probe
    assert slowdown(small, replace(large, arch='alexnet')) is None  # not timm's: pixels decide
    assert slowdown(small, replace(large, freeze_stride=8)) is None  # another step altogether
    from paddy.playbook.stages import measured_rate
    from paddy.train.probe import LEARNER_S_PER_IMAGE, _rate, learner_images_per_s
    from paddy.workspace import here
    px, source = measured_rate(here(), large)  # nothing trained here yet: the run's own step, probed
    assert source.startswith('a probe of its training step') and P.cost(large) / px == pytest.approx(
        1 / learner_images_per_s(large))
    step = _rate(large.arch, 0, large.bs, (256, 256))  # the probe's measure, taken once
    assert 1 / learner_images_per_s(large) == pytest.approx(1 / step + LEARNER_S_PER_IMAGE)  # and the Learner's time
    assert measured_rate(here(), replace(large, arch='alexnet'))[1].startswith('a prior for cpu')


def test_final_runs_on_every_image_train_on_all_of_them_and_validate_none(tiny_spec):
    e = load_experiment(str(tiny_spec), ['epochs=2'])
    rate = P.cost(e) * 100  # 100 images a second
    assert P.estimate(e, 'f', 1000, 0, rate, 'm', pretrained=False, full=True).seconds == pytest.approx(1000 * 2 / 100)
    assert P.estimate(e, 's', 1000, 0, rate, 'm', pretrained=False).seconds == pytest.approx(
        800 * 2 / 100 + P.tta(e, 200, 0, rate))


def test_a_split_too_small_to_rank_the_candidates_skips_screening(book, comp):
    "DeepWeeds' 450 validation images tell apart only candidates 4.6 points apart; the competition's 2,081, 2.1."
    from dataclasses import replace
    from paddy.playbook import stages as S
    assert P.resolution(450) == pytest.approx(0.046, abs=5e-4) and P.resolution(2081) == pytest.approx(0.021, abs=5e-4)
    r = S.PlaybookRun(replace(load_playbook(str(book)), screen_resolve=0.03), 'tinybook-comp', comp, 1.0)
    est, why = S.screen_plan(r, comp)
    assert est == [] and why.startswith('no screening: 7 validation images') and 'first candidate goes on' in why
    assert S.shrink(r) == dict(data=str(comp)) and not Path('data').exists()  # no small copy for no screening
    r.book = replace(r.book, screen_resolve=0.5)  # 7 images tell apart candidates 37 points apart: screen them
    assert [e.label for e in S.screen_plan(r, comp)[0]] == ['tiny', 'tiny@lr=0.02']
    keep, _, epochs, why, _ = S.final_plan(r, ['tiny'], dict(skipped=True))
    assert why.startswith('no screening run measured whether') and len(keep) == 2  # both repeats, epochs first


@pytest.mark.parametrize('extra, says', [('final_full = True\nfolds = 3\n', 'set one of them'),
                                         ('final_full = True\n', 'set select = None'),
                                         ('screen_resolve = 2\n', 'must be a difference in error')])
def test_playbook_fields_that_contradict_each_other_are_refused(tiny_spec, extra, says):
    from paddy.errors import PaddyError
    Path('bad.py').write_text(BOOK.format(spec=tiny_spec) + extra)
    with pytest.raises(PaddyError, match=says): load_playbook('bad.py')


def test_dry_run_prints_the_plan_and_trains_nothing(comp, book):
    r = CliRunner().invoke(app, ['playbook', str(book), '--data', str(comp), '--hours', '0.5', '--dry-run'])
    assert r.exit_code == 0, r.output
    assert 'plan: 2 runs' in r.output and 'a probe of its training step' in r.output
    assert 'screen tiny@lr=0.02' in r.output
    assert 'run   tiny #2' in r.output
    assert not Path('models').exists() and not Path('playbooks').exists() and not Path('data').exists()


def test_a_budget_too_small_for_the_screening_says_how_much_it_needs(comp, book):
    r = CliRunner().invoke(app, ['playbook', str(book), '--data', str(comp), '--hours', '0.00001'])
    assert r.exit_code == 2 and 'alone needs about' in r.output and 'give --hours' in r.output, r.output
    assert not Path('models').exists() and not Path('data').exists()  # refused before the copy, too


def test_two_playbooks_of_one_name_at_once_are_refused(comp, book):
    from paddy.playbook.state import locked
    from paddy.errors import PaddyError
    with locked(Path('playbooks/tinybook-comp')):
        with pytest.raises(PaddyError, match='is running already'):
            with locked(Path('playbooks/tinybook-comp')): pass
    Path('playbooks/tinybook-comp/lock').write_text('999999999\n')  # a crashed process's lock is taken over
    with locked(Path('playbooks/tinybook-comp')): assert Path('playbooks/tinybook-comp/lock').exists()


def test_a_run_folder_of_states_does_not_hide_the_shipped_playbooks():
    Path('playbooks/cpu-data').mkdir(parents=True)  # what a playbook run leaves in a folder of its own
    assert load_playbook('cpu').name == 'cpu'
    Path('playbooks/mine.py').write_text("candidates = ['demo_scratch']\n")
    assert load_playbook('mine').candidates == ('demo_scratch',) and load_playbook('quick').name == 'quick'


def test_shipped_playbooks_load_and_name_real_candidates():
    for name in ('road_to_the_top', 'quick', 'cpu'):
        b = load_playbook(name)
        assert b.candidates and b.name == name
    cpu = load_playbook('cpu')
    assert {e for e, _ in cpu.candidate_sets()} == {'efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2'}


def test_choose_takes_the_faster_and_the_more_diverse_among_those_within_noise_of_the_best():
    import pandas as pd
    from paddy.playbook.stages import choose
    rows = [('lite0', 'efficientnet', 'squish', 100, True), ('lite0_crop', 'efficientnet', 'crop', 90, True),
            ('lite0_pad', 'efficientnet', 'pad', 95, True), ('vit', 'vit', 'squish', 200, True),
            ('convnext', 'convnext', 'squish', 50, False)]
    p = pd.DataFrame(rows, columns=['experiment', 'family', 'resize', 'fit_time', 'same_as_best'])
    chosen, tied = choose(p, 2)
    # the fastest of the four that noise cannot separate, then another family, not a second Lite0
    assert chosen == ['lite0_crop', 'vit'] and tied == ['lite0', 'lite0_crop', 'lite0_pad', 'vit']
    # then an untaken resize method before a repeat, and only then what is worse beyond noise
    assert choose(p, 5)[0] == ['lite0_crop', 'vit', 'lite0_pad', 'lite0', 'convnext']
    # no interval known (no predictions): the best by error alone is the only one that cannot be told apart
    chosen, tied = choose(p.assign(same_as_best=None), 2)
    assert tied == ['lite0'] and chosen == ['lite0', 'lite0_crop']


def test_screening_keeps_to_its_share_of_the_budget_and_is_dropped_when_small():
    est = [P.Estimate(f'c{k}', 100.0, 'm') for k in range(5)]
    assert P.screen_share(est, None)[0] == est  # no budget: every candidate
    keep, why = P.screen_share(est, 1500.0)  # 20%: 300 s, three runs
    assert [e.label for e in keep] == ['c0', 'c1', 'c2'] and 'left out: c3, c4' in why
    assert sum(e.seconds for e in keep) <= P.SCREEN_SHARE * 1500
    keep, why = P.screen_share(est, 900.0)  # 180 s: one run, too few to compare
    assert keep == [] and why.startswith('no screening') and "the playbook's first candidate goes on" in why
    assert len(P.screen_share(est, 900.0, devices=2)[0]) == 2  # two GPUs screen two at once


def test_final_epochs_fill_the_budget_up_to_three_times_the_playbooks():
    def make(e): return [P.Estimate('a', 10 + 5 * e, 'm'), P.Estimate('b', 10 + 5 * e, 'm')]
    assert P.epochs_for(make, 4, 100.0)[0] == 8  # 2 × (10 + 5 × 8) = 100
    assert P.epochs_for(make, 4, 10_000.0)[0] == P.MAX_EPOCHS * 4
    e, keep, drop = P.epochs_for(make, 4, 20.0)  # not even one epoch each: the first run alone, with what it can have
    assert (e, [k.label for k in keep], [d.label for d in drop]) == (2, ['a'], ['b'])


def test_with_no_screening_the_first_candidate_goes_on_and_says_why(book, comp):
    from paddy.playbook import stages as S
    r = S.PlaybookRun(load_playbook(str(book)), 'tinybook-comp', comp, 0.01)
    assert r.margin() == pytest.approx(P.MARGIN * 36)
    got = S.rank(r, dict(skipped=True, why='no screening: too small'))
    assert got['chosen'] == [r.book.first()] == ['tiny'] and got['why'] == 'no screening: too small'
    assert got['unranked']  # the summary says it was not ranked, not 'by TTA error'


def test_fewer_final_runs_with_enough_epochs_rather_than_all_of_them_at_one():
    def make(e): return [P.Estimate(x, 10 + 5 * e, 'm') for x in 'abc']
    e, keep, drop = P.epochs_for(make, 4, 100.0)  # three runs get 4 epochs at most (3 × 30 ≤ 100): all go
    assert (e, [k.label for k in keep], drop) == (4, ['a', 'b', 'c'], [])
    e, keep, drop = P.epochs_for(make, 4, 70.0)  # three would get 2 epochs: two runs of 5 instead
    assert (e, [k.label for k in keep], [d.label for d in drop]) == (5, ['a', 'b'], ['c'])
    e, keep, drop = P.epochs_for(make, 4, 25.0)  # even one run gets only 3: it goes, with them
    assert (e, [k.label for k in keep], [d.label for d in drop]) == (3, ['a'], ['b', 'c'])


def test_runs_that_still_underfit_get_epochs_before_more_runs():
    "Where screening ended underfitting, one run trained longer beats an ensemble of runs that have not fitted."
    def make(e): return [P.Estimate(x, 10 + 5 * e, 'm') for x in 'abc']
    e, keep, drop = P.epochs_for(make, 4, 70.0, epochs_first=True)  # not two runs of 5: one of 12 (10 + 60 = 70)
    assert (e, [k.label for k in keep], [d.label for d in drop]) == (12, ['a'], ['b', 'c'])
    e, keep, drop = P.epochs_for(make, 4, 50.0, epochs_first=True)  # one run, the most epochs that fit
    assert (e, [k.label for k in keep]) == (8, ['a'])
    e, keep, drop = P.epochs_for(make, 4, 140.0, epochs_first=True)  # two runs each at 12: both go
    assert (e, [k.label for k in keep], [d.label for d in drop]) == (12, ['a', 'b'], ['c'])
    e, keep, drop = P.epochs_for(make, 4, 120.0, epochs_first=True)  # no room for a second at 12: the first takes 22
    assert (e, [k.label for k in keep], [d.label for d in drop]) == (22, ['a'], ['b', 'c'])
    e, keep, drop = P.epochs_for(make, 4, 10_000.0, epochs_first=True)  # all three at 12 leave room: up to 24 each
    assert (e, [k.label for k in keep]) == (P.UNDERFIT_EPOCHS * 4, ['a', 'b', 'c'])
    e, keep, drop = P.epochs_for(make, 4, 50.0, devices=2, epochs_first=True)  # a second device's run costs no time
    assert (e, [k.label for k in keep]) == (8, ['a', 'b'])
    assert P.epochs_for(make, 4, 70.0)[:2] == (5, P.epochs_for(make, 4, 70.0)[1])  # without it, as before


def test_sizes_grow_by_the_models_stride_as_far_as_a_training_crop_holds_pixels(tiny_spec):
    from dataclasses import replace
    e = load_experiment(str(tiny_spec), ['item_size=256', 'aug_size=192', 'min_scale=0.75'])
    assert P.growths(e) == [224 / 192]  # a training crop holds 0.90 of 256 px: 230, room for 224 and not 256
    assert P.grown(e, 224 / 192).aug_size == 224 and P.grown(e, 1.0) is e
    rect = replace(e, item_size=(480, 360), aug_size=(224, 168))
    assert [round(g * 224) for g in P.growths(rect)] == list(range(256, 433, 32))
    assert P.grown(rect, 256 / 224).aug_size == (256, 192)  # its aspect kept
    assert P.grown(replace(rect, aug_size=(224, 168)), 3.0).aug_size == (480, 360)  # never past the item
    assert P.growths(replace(e, aug_sizes=((128, 128), (192, 192)))) == []  # progressive sizes: a schedule already


def test_at_the_ceiling_of_epochs_the_rest_of_the_budget_buys_a_larger_size(book, comp):
    "More epochs first; once the runs have three times the playbook's, the size grows, trading up to a third of them."
    from dataclasses import replace
    from paddy.playbook import stages as S
    b = replace(load_playbook(str(book)), final_sets=['item_size=128', 'aug_size=32'])
    r = S.PlaybookRun(b, 'tinybook-comp', comp, 1.0)
    base = S.experiments(r, 'final', [b.first()])[0]
    assert P.growths(base) == [2.0, 3.0]  # 64 and 96 px

    def make(e, g=1.0): return [P.Estimate('a', e * g ** 2, 'm'), P.Estimate('b', e * g ** 2, 'm')]
    top = P.UNDERFIT_EPOCHS * b.final_epochs  # 6
    keep = make(top)[:1]
    assert S.larger(r, base, make, top, keep, 6.0, 1) == (1.0, None)  # no time to spare
    assert S.larger(r, base, make, P.MAX_EPOCHS - 1, keep, 1e9, 1) == (1.0, None)  # too few epochs yet: epochs first
    assert S.larger(r, base, make, P.MAX_EPOCHS, keep, 1e9, 1)[0] == 3.0  # three times the playbook's: pixels
    g, (e, runs) = S.larger(r, base, make, top, keep, 30.0, 1)  # 6 epochs at 64 px: 24 s
    assert (g, e, [(x.label, x.seconds) for x in runs]) == (2.0, 6, [('a', 24.0)])  # only the runs kept
    g, (e, runs) = S.larger(r, base, make, top, keep, 40.0, 1)  # at 96 px 4 epochs (36 s), the floor: 2/3 of 6
    assert (g, e) == (3.0, 4)
    assert S.larger(r, base, make, top, keep, 35.0, 1)[0] == 2.0  # 96 px would leave too few epochs
    keep, drop, epochs, why, grow = S.final_plan(r, [b.first()], {}, 1e9)  # real probes of the tiny model's steps
    assert (epochs, grow) == (top, 3.0) and why.endswith('6 epochs at 96 px rather than 6 at 32 px'), why
    assert 'past 3 epochs the rest of the budget buys pixels' in why


@pytest.mark.parametrize('how', ['--status', '--dry-run', None])
def test_a_state_whose_stage_lacks_a_field_is_one_line(comp, book, how):
    f = Path('playbooks/tinybook-comp/state.json')
    f.parent.mkdir(parents=True)
    state = dict(args=dict(playbook='tinybook', data=str(comp.resolve()), hours=1), started='today',
                 stages=dict(check=dict(seconds=1.0), shrink=dict(seconds=2.0)))  # shrink's small copy not recorded
    f.write_text(json.dumps(state))
    r = CliRunner().invoke(app, ['playbook', str(book), '--data', str(comp)] + ([how] if how else []))
    assert r.exit_code == 2 and "its stage 'shrink' lacks data" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and json.loads(f.read_text()) == state


def test_a_runs_rate_comes_from_its_whole_model_epochs():
    "fine_tune's frozen epoch trains the head alone: counting it flatters a short run's rate."
    from paddy.record import RunRecord
    exp = dict(name='x', arch='resnet18', aug_size=96)
    rec = RunRecord(run='x-000001', experiment=exp, n_train=100, img_per_s=6.0,  # 300 images in 50 s, all epochs
                    history=[dict(epoch=0, frozen=True, seconds=10.0), dict(epoch=1, frozen=False, seconds=20.0),
                             dict(epoch=2, frozen=False, seconds=20.0)])
    px = float(96 * 96) ** P.PIXEL_POWER
    assert P.rate(rec) == pytest.approx(5.0 * px)  # 100 images in 20 s
    assert P.rate(RunRecord(run='y-000002', experiment=exp, n_train=100, img_per_s=6.0)) == pytest.approx(6.0 * px)
