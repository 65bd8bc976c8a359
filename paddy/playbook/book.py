"""Playbook files: `playbooks/<name>.py`, plain assignments like an experiment's, naming the whole Road to the Top
method: the candidates to screen, how small and short the screening is, how many go forward and how they train at full
size, and how the ensemble is chosen."""
import re, typing
from dataclasses import dataclass, fields
from pathlib import Path

from ..errors import PaddyError
from ..spec import find_file, load as load_experiment, read_assignments
from ..workspace import here

SELECT = (None, 'greedy', 'logloss')


@dataclass(frozen=True)
class Playbook:
    "One method from data to submission; `name` is its file stem."
    name: str
    candidates: tuple                  # experiment names, or (name, ['field=value', …]) for a variant
    screen_size: int = 256             # the small copy's longest side; 0 screens on the data itself
    screen_sets: tuple = ()            # fields every screening run takes, e.g. sizes that suit the small copy
    screen_epochs: int = 3
    # screen only where the validation split tells apart candidates this far apart in error (`plan.resolution`), else
    # the first candidate goes on unscreened; 0 screens at any split size
    screen_resolve: float = 0.0
    top: int = 3                       # how many go on to the final sweep, best score first; 0 ensembles the screening
    final_sets: tuple = ()             # full-size fields and techniques every final run takes
    final_epochs: int = 12
    folds: int = 0                     # final runs as CV runs of this many folds; 0 for one split
    # final runs fit on every labelled image, the validation split's too (`paddy train --full`), and their ensemble is
    # the plain mean: nothing is left to choose or score it by
    final_full: bool = False
    repeat: int = 1                    # final runs of each candidate
    select: typing.Optional[str] = 'greedy'  # how the ensemble picks its members: greedy, logloss, or None (the mean)
    submit: bool = False               # submit the ensemble's CSV at the end (`--submit -m MSG` asks too)

    def candidate_sets(self) -> list[tuple[str, tuple]]:
        "Each candidate as (experiment, its `--set`s)."
        return [(c, ()) if isinstance(c, str) else (c[0], tuple(c[1])) for c in self.candidates]

    def first(self) -> str:
        "The first candidate's label: the one that goes on when there is no screening."
        return label(*self.candidate_sets()[0])


SHIPPED = Path(__file__).resolve().parent.parent.parent / 'playbooks'


def folders() -> list[Path]:
    """Where playbooks are looked up: `playbooks/` under the working directory, then the ones paddy ships. A run's own
    state lives in `playbooks/<run>/` too, so a folder of states alone must not hide the shipped playbooks."""
    mine = here().playbooks
    return [mine] + ([SHIPPED] if not mine.is_dir() or mine.resolve() != SHIPPED else [])


def available() -> list[str]:
    return sorted({p.stem for f in folders() for p in f.glob('*.py') if not p.stem.startswith('_')})


def path_of(name: str) -> Path:
    "The file of playbook `name`, or `name` itself when it is a path to a .py file."
    return find_file(name, folders(), 'playbook', f"there are {', '.join(available()) or 'none'}")


FIELDS = {f.name: f for f in fields(Playbook) if f.name != 'name'}


def load_playbook(name: str) -> Playbook:
    "Read playbook `name` and check every candidate's experiment, with its sets, before anything trains."
    p = path_of(name)
    vals = read_assignments(p, FIELDS)  # lists come back as tuples
    if 'candidates' not in vals or not vals['candidates']:
        raise PaddyError(f"{p}: set `candidates`, e.g. candidates = ['convnext_small_squish', 'vit_small_squish']")
    book = Playbook(name=p.stem, **vals)
    check_playbook(book, p)
    return book


def check_playbook(book: Playbook, where: Path):
    "Raise, naming the file, on a field out of range or a candidate that does not load."
    for key in ('screen_epochs', 'final_epochs', 'repeat'):
        if getattr(book, key) < 1: raise PaddyError(f"{where}: {key}={getattr(book, key)} must be 1 or more")
    if book.top < 0: raise PaddyError(f"{where}: top={book.top} must be 0 (no final sweep) or more")
    if book.screen_size < 0: raise PaddyError(f"{where}: screen_size={book.screen_size} must be a side in pixels, or 0")
    if book.folds == 1 or book.folds < 0: raise PaddyError(f"{where}: folds={book.folds} must be 0 (one split) or 2+")
    if not 0 <= book.screen_resolve < 1:
        raise PaddyError(f"{where}: screen_resolve={book.screen_resolve} must be a difference in error, e.g. 0.03, "
                         "or 0")
    if book.final_full and book.folds:
        raise PaddyError(f"{where}: folds={book.folds} validates the final runs out of fold and final_full trains them "
                         "on every image: set one of them")
    if book.final_full and book.top and book.select:
        raise PaddyError(f"{where}: select={book.select!r} chooses the ensemble by validation, and final_full leaves "
                         "the final runs none: set select = None (their plain mean)")
    if book.select not in SELECT: raise PaddyError(f"{where}: select={book.select!r} must be greedy, logloss or None")
    for c in book.candidates:
        if not (isinstance(c, str) or (isinstance(c, (list, tuple)) and len(c) == 2 and isinstance(c[0], str)
                                       and all(isinstance(s, str) for s in c[1]))):
            raise PaddyError(f"{where}: candidate {c!r} must be an experiment name or (name, ['field=value', …])")
    names = [label(e, s) for e, s in book.candidate_sets()]
    if len(set(names)) < len(names): raise PaddyError(f"{where}: a candidate is named twice")
    for exp, sets in book.candidate_sets():  # an unknown candidate fails here, before anything trains
        for stage in ([*book.screen_sets, f'epochs={book.screen_epochs}'], [*book.final_sets,
                                                                          f'epochs={book.final_epochs}']):
            try: load_experiment(exp, [*stage, *sets])  # a candidate's own sets win over the stage's
            except PaddyError as e: raise PaddyError(f"{where}: candidate {label(exp, sets)}: {e}") from None


def flat(book: Playbook) -> str:
    """`book` as a file of plain assignments that needs nothing beside it but its candidates' experiments, named by
    their file stems: what `paddy kaggle run --playbook` ships."""
    vals = {f.name: getattr(book, f.name) for f in fields(Playbook) if f.name != 'name'}
    vals['candidates'] = [stem(e) if not sets else (stem(e), list(sets)) for e, sets in book.candidate_sets()]
    return (f'"""{book.name}, as `paddy kaggle run --playbook` shipped it."""\n'
            + ''.join(f'{k} = {v!r}\n' for k, v in vals.items()))


def stem(exp: str) -> str: return Path(exp).stem if exp.endswith('.py') else exp


def label(exp: str, sets=()) -> str:
    "A candidate's name, safe in a file name: the experiment, then its sets (`convnext_small_squish@resize=crop`)."
    return '@'.join([stem(exp), *(re.sub(r'[^\w.=-]+', '_', s) for s in sets)])  # a spec file: named by its stem
