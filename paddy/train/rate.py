"""`paddy lr-find EXP`: fastai's learning-rate finder on the experiment's own data and transforms, its plot and its
record in reports/, before any run trains at a guessed rate."""
import dataclasses, time

from ..files import write_json
from ..provenance import stamp
from ..spec import load
from ..workspace import Workspace, here
from . import lr_find
from .trainer import prepare
from .settings import Settings


def find_rate(exp: str, sets=(), settings: Settings = Settings(), ws: Workspace | None = None) -> str:
    """Run the finder for experiment `exp` with `sets`; write reports/lr-find-EXP-DATE-TIME.{png,json} and say both
    suggestions. Nothing is trained or named under models/."""
    spec = load(exp, sets)
    # the finder needs a rate to build the learner with, which it then sweeps past: any number does
    probe = dataclasses.replace(spec, lr=0.01) if spec.lr == lr_find.FIND else spec
    ws = ws or here()
    r = prepare(probe, settings, ws, begin=False)
    print(f"{spec.name}: learning-rate finder on {len(r.learn.dls.train_ds)} training images, bs {r.bs}"
          + (' (the head alone, as fine_tune starts)' if r.weights.pretrained else ''))
    found = lr_find.find(r.learn, spec.name)
    base = time.strftime(f'lr-find-{spec.name}-%Y%m%d-%H%M%S')
    png = lr_find.plot(found, f'{spec.name}: valley {found["valley"]:.2e}, slide {found["slide"]:.2e}',
                       ws.report(base, 'png'))
    write_json(ws.report(base, 'json'), dict(experiment=dataclasses.asdict(spec), sets=list(sets),
                                               data=r.settings.data, train_seed=r.train_seed, **found, **stamp()))
    return (f"{spec.name}: valley {found['valley']:.2e}, slide {found['slide']:.2e} → {png} and "
            f"{ws.report(base, 'json')}; train at one with --set lr=…, or declare lr = 'find' to let each run find "
            "its own")
