"""A playbook as a Kaggle kernel: the playbook written flat, its candidates' experiments, and what its earlier sessions
left here (its state, and its finished runs with their predictions), so that the kernel's `paddy playbook` goes on
from the first unfinished stage and never retrains a run that was pulled."""
import hashlib
from pathlib import Path

from ..playbook.book import Playbook, flat, load_playbook
from ..spec import load
from ..sweep import finished
from ..train.learner import check_experiment
from ..workspace import Workspace, here
from . import bundle, kernel


def checked(name: str, accelerator: str, title: str | None) -> tuple[Playbook, list, str]:
    """The playbook, its candidates' experiments as shipped (without the stages' sets, which the playbook applies) and
    the kernel's title; what would fail on Kaggle is refused here, before any call to it."""
    book = load_playbook(name)
    for exp, sets in book.candidate_sets():  # as the kernel will train them, screening and final
        for stage in (book.screen_sets, book.final_sets):
            spec = load(exp, [*stage, *sets])
            check_experiment(spec)
            bundle.check_portable(spec)
    specs = [load(exp) for exp in dict.fromkeys(exp for exp, _ in book.candidate_sets())]
    kernel.check_accelerator(accelerator)
    return book, specs, kernel.check_title(title or f'paddy playbook {book.name}'[:50])


def run_name(book: Playbook, specs: list) -> str:
    "The playbook run's name on Kaggle: one for the same playbook and experiments, so the same push goes on with it."
    key = flat(book) + ''.join(bundle.experiment_text(s) for s in specs)
    return f'kaggle-{book.name}-' + hashlib.sha1(key.encode()).hexdigest()[:6]


def earlier(run: str, ws: Workspace) -> tuple[dict, dict, dict]:
    """What earlier sessions of `run` left here: its finished runs' .json (run → text), their predictions and its state
    folder's files as extra dataset files, and the manifest's record of them."""
    done = [m for stage in ('screen', 'final') for m in finished(f'{run}-{stage}', ws).values()]  # jobs alike
    runs = {m.run: ws.record(m.run).read_text() for m in done}
    predicted = [r for r in sorted(runs) if ws.probs(r).is_file()]
    extra = {f'finished-{r}.npz': ws.probs(r).read_bytes() for r in predicted}
    folder = ws.playbook(run)
    state = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != 'lock') if folder.is_dir() else []
    extra.update({f'state-{f}': (folder / f).read_bytes() for f in state})
    return runs, extra, dict(state=state, preds=predicted)


def prepare(folder: Path, owner: str, book: Playbook, specs: list, accelerator: str, title: str, hours: float,
            ws: Workspace | None = None) -> dict:
    "Write `folder/dataset` and `folder/kernel` for playbook `book` within the session's `hours`."
    run = run_name(book, specs)
    done, extra, info = earlier(run, ws or here())
    extra[f'playbook-{book.name}.py'] = flat(book).encode()
    print(f"building paddy's wheel and the dataset of playbook {book.name} as run {run}"
          + (f" (its state and {len(done)} finished runs from earlier sessions, which the kernel goes on from)"
             if info['state'] or done else '') + '…', flush=True)
    manifest = bundle.build(folder / 'dataset', owner, specs, (), done, extra, playbook=book.name, run=run, **info)
    meta = kernel.metadata(owner, title, f'{owner}/{bundle.SLUG}', accelerator)
    code = kernel.script(manifest['bundle'], manifest['experiments'], [], meta['id'], dataset=bundle.SLUG, hours=hours,
                         playbook=book.name, run=run)
    kernel.write(folder / 'kernel', meta, code)
    return dict(meta=meta, manifest=manifest)
