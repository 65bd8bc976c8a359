"""Sweeps on Kaggle's GPUs: push one as a kernel, ask how it is doing, pull its runs beside the local ones."""
import csv, hashlib, json, re, shutil, sys, tempfile, time
from datetime import timedelta
from pathlib import Path

from ..data import COMPETITION, find_data, tst_items
from ..errors import PaddyError
from ..playbook.state import continues
from ..predict import load_preds
from ..files import append_row, is_run_name, read_json, replaced, written_once
from ..provenance import git_commit
from ..spec import load_sweep, recipe
from ..sweep import finished
from ..train import Settings
from ..train.learner import check_experiment
from ..workspace import Workspace, here
from . import bundle, kernel, playbooks
from .client import api, kaggle_errors, rules_url

HOURS = 12.0  # a GPU session's limit on Kaggle
RECORD = 'paddy-kaggle-run.json'  # what the kernel's script writes: what ran, what was skipped, how long it took
COLUMNS = ('time', 'kernel', 'version', 'url', 'experiments', 'repeat', 'set', 'accelerator', 'bundle', 'paddy_commit')
# what each of kagglesdk's KernelWorkerStatus means for status and pull; a session stopped at its time limit ends
# CANCEL_ACKNOWLEDGED, as a cancelled one does, not ERROR (kaggle-cli #1140 and its kin)
WAITING = ('queued', 'running', 'new_script', 'cancel_requested')
HINTS = {'complete': 'pull its runs with `paddy kaggle pull`',
         'error': 'see its log with `paddy kaggle pull`',
         'cancel_acknowledged': "it was cancelled or reached Kaggle's time limit; `paddy kaggle pull` brings what it "
                                "kept, and the same `paddy kaggle run` pushes the runs left",
         **dict.fromkeys(WAITING, 'ask again later')}


def owner(kaggle_api) -> str: return kaggle_api.config_values[kaggle_api.CONFIG_NAME_USER]


def dry_run_owner() -> str:
    "Your Kaggle user name where credentials are set up; a dry run sends nothing, so without them it writes 'you'."
    try: return owner(api())
    except PaddyError:
        print("note: no Kaggle credentials here, so the dry run's dataset and kernel belong to 'you'", file=sys.stderr)
        return 'you'


def quota(kaggle_api) -> str:
    "The account's GPU hours left this week, in words; a failure here must not fail a push that went through."
    try:
        with kaggle_errors(): q = kaggle_api.quota_view()
        g = q.gpu_quota
        left = (g.total_time_allowed - g.time_used - (g.time_reserved or timedelta(0))).total_seconds() / 3600
        when = f"; it renews {q.quota_refresh_time:%Y-%m-%d %H:%M} UTC" if q.quota_refresh_time else ''
        return f'{left:.1f} of {g.total_time_allowed.total_seconds() / 3600:.1f} GPU hours left this week{when}'
    except Exception as e: return f'GPU quota unknown ({str(e).splitlines()[0] if str(e) else type(e).__name__})'


def checked(exps: list[str], repeat: int, sets, accelerator: str, title: str | None) -> tuple[list, str]:
    "The experiments and the kernel's title; what would fail on Kaggle is refused here, before any call to it."
    if not exps: raise PaddyError("name at least one experiment: paddy kaggle run EXP… (see paddy list), or give "
                                  "--playbook NAME")
    specs = load_sweep(exps, sets, repeat)
    for s in specs:
        check_experiment(s)
        bundle.check_portable(s)
    kernel.check_accelerator(accelerator)
    return specs, kernel.check_title(title or kernel.default_title([s.name for s in specs]))


def sweep_name(specs: list, repeat: int, sets, fit_memory: float | None) -> str:
    "The kernel's sweep: one name for the same experiments and arguments, whatever paddy's code, so a push resumes it."
    key = dict(experiments={s.name: recipe(s) for s in specs}, repeat=repeat, set=list(sets), fit_memory=fit_memory)
    return 'kaggle-' + hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]


def prepare(folder: Path, owner_: str, specs: list, repeat: int, sets, accelerator: str, title: str,
            fit_memory: float | None = None, hours: float = HOURS, ws: Workspace | None = None) -> dict:
    """Write `folder/dataset` and `folder/kernel` for a sweep of `specs` within `hours`; runs of that sweep already
    pulled into `models` go along, so the kernel skips them."""
    name, ws = sweep_name(specs, repeat, sets, fit_memory), ws or here()
    done = {m.run: ws.record(m.run).read_text() for m in finished(name, ws).values()}
    print(f"building paddy's wheel and the dataset of {', '.join(s.name for s in specs)}"
          + (f" ({len(done)} runs already pulled, which the kernel skips)" if done else '') + '…', flush=True)
    manifest = bundle.build(folder / 'dataset', owner_, specs, sets, done)
    meta = kernel.metadata(owner_, title, f'{owner_}/{bundle.SLUG}', accelerator)
    args = Settings(fit_memory=fit_memory).argv('--repeat', str(repeat), sets=sets)  # for the kernel's paddy sweep
    code = kernel.script(manifest['bundle'], manifest['experiments'], args, meta['id'], dataset=bundle.SLUG,
                         sweep=name, hours=hours)
    kernel.write(folder / 'kernel', meta, code)
    return dict(meta=meta, manifest=manifest)


def push(exps: list[str], repeat: int = 1, sets=(), accelerator: str = kernel.ACCELERATOR, title: str | None = None,
        dry_run: Path | None = None, log: Path | None = None, fit_memory: float | None = None, hours: float = HOURS,
        playbook: str | None = None) -> dict:
    """Push a kernel that sweeps `exps` (or runs `playbook`) on Kaggle's GPU, with paddy's dataset versioned first if
    it changed; `dry_run` only writes the folders. `fit_memory` (GB) lets each run raise its accum until it fits the
    GPU, as `paddy sweep --fit-memory`."""
    if not 0 < hours <= HOURS:
        raise PaddyError(f"--hours {hours:g}: a GPU session on Kaggle lasts up to {HOURS:g} hours")
    if fit_memory is not None and fit_memory <= 0:
        raise PaddyError(f"--fit-memory {fit_memory:g}: give the GPU's memory in GB, e.g. 15 for a T4")
    if dry_run is not None and dry_run.exists() and any(dry_run.iterdir()):
        raise PaddyError(f"--dry-run {dry_run} exists and is not empty: give a new folder (nothing is overwritten)")
    if playbook:
        if exps or repeat != 1 or sets or fit_memory is not None:
            raise PaddyError(f"--playbook {playbook} names its candidates and how they train: give no EXP, --repeat, "
                             "--set or --fit-memory with it (edit the playbook instead)")
        book, specs, title = playbooks.checked(playbook, accelerator, title)
        exps = [f'playbook {book.name}:', *(s.name for s in specs)]  # what kaggle-runs.csv records

        def prep(folder, owner_): return playbooks.prepare(folder, owner_, book, specs, accelerator, title, hours)
    else:
        specs, title = checked(exps, repeat, sets, accelerator, title)

        def prep(folder, owner_):
            return prepare(folder, owner_, specs, repeat, sets, accelerator, title, fit_memory, hours)
    if dry_run is not None:
        p = prep(dry_run, dry_run_owner())
        print(f"wrote {dry_run}/dataset (paddy {p['manifest']['bundle']}) and {dry_run}/kernel ({p['meta']['id']}); "
              "nothing was pushed")
        return p
    kaggle_api = api()
    with tempfile.TemporaryDirectory(prefix='paddy-kaggle-') as tmp:
        p = prep(Path(tmp), owner(kaggle_api))
        print(bundle.publish(kaggle_api, Path(tmp) / 'dataset', owner(kaggle_api), p['manifest']['bundle']))
        with kaggle_errors(): r = kaggle_api.kernels_push(str(Path(tmp) / 'kernel'))
    meta = p['meta']
    if r.error and 'session count' in r.error.lower():  # "Maximum batch GPU session count of 2 reached"
        raise PaddyError(f"Kaggle runs at most a few GPU sessions at once ({r.error.strip().rstrip('.')}): wait for a "
                         "running kernel to end (paddy kaggle status KERNEL), or stop it on its page, then push again")
    if r.error: raise PaddyError(f"Kaggle refused kernel {meta['id']}: {r.error}")
    if r.invalid_competition_sources:
        raise PaddyError(f"Kaggle pushed {meta['id']} without the competition's data: accept the rules at "
                         f"{rules_url(COMPETITION)}, then run this again")
    if r.invalid_dataset_sources:
        raise PaddyError(f"Kaggle pushed {meta['id']} without {', '.join(r.invalid_dataset_sources)}: "
                         "the dataset is not visible to it yet; run this again in a minute")
    row = dict(time=time.strftime('%Y-%m-%dT%H:%M:%S%z'), kernel=meta['id'], version=r.version_number, url=r.url,
               experiments=' '.join(exps),
               repeat=repeat, set=' '.join(sets), accelerator=accelerator, bundle=p['manifest']['bundle'],
               paddy_commit=git_commit())
    append_row(log or here().kaggle_log, COLUMNS, row)
    print(f"pushed {meta['id']} version {r.version_number}: {r.url}")
    print(quota(kaggle_api))
    return dict(p, row=row)


def target(kernel_: str | None, log: Path | None = None) -> str:
    "KERNEL as given (owner/slug, owner/slug/version or slug), else the last one pushed from here, at its version."
    if kernel_: return kernel_
    log = log or here().kaggle_log
    rows = list(csv.DictReader(log.read_text().splitlines())) if log.is_file() else []
    if not rows:
        raise PaddyError(f"no kernel pushed from here ({log} is missing or empty): name one, e.g. paddy kaggle status "
                         "you/paddy-demo-scratch")
    return f"{rows[-1]['kernel']}/{rows[-1]['version']}" if rows[-1]['version'] else rows[-1]['kernel']


def pinned(kaggle_api, ref: str) -> str:
    """`ref` with its version: the kernel's current one where none is given, so that a later push can't change what is
    meant."""
    owner_, slug, version = kaggle_api.parse_kernel_string(ref)
    if version: return ref
    from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelRequest
    req = ApiGetKernelRequest()
    req.user_name, req.kernel_slug = owner_, slug
    with kaggle_errors(thing=f'kernel {owner_}/{slug}'), kaggle_api.build_kaggle_client() as k:
        n = k.kernels.kernels_api_client.get_kernel(req).metadata.current_version_number
    return f'{owner_}/{slug}/{n}' if n else f'{owner_}/{slug}'


def state(kaggle_api, ref: str) -> tuple[str, str | None]:
    with kaggle_errors(thing=f'kernel {ref}'): r = kaggle_api.kernels_status(ref)
    return r.status.name.lower(), r.failure_message


def kernel_status(kernel_: str | None = None, log: Path | None = None) -> str:
    "The kernel's state in one line."
    kernel_ = target(kernel_, log)
    kaggle_api = api()
    ref = pinned(kaggle_api, kernel_)
    st, why = state(kaggle_api, ref)
    hint = HINTS.get(st, 'see it on its Kaggle page')  # a state kagglesdk may add one day
    line = f"{ref}: {st}" + (f" ({why})" if why else '') + f"; {hint}"
    record = run_record(kaggle_api, ref) if st in ('complete', 'cancel_acknowledged') else None
    return line + (f"\n{ref}: {skipped(record)}" if record else '')


def run_record(kaggle_api, ref: str) -> dict | None:
    "The kernel's own record of its sweep, fetched alone (a small file), or None where it left none."
    with tempfile.TemporaryDirectory(prefix='paddy-status-') as tmp, kaggle_errors(thing=f'kernel {ref}'):
        kaggle_api.kernels_output(ref, tmp, file_pattern=f'^{re.escape(RECORD)}$', quiet=True)
        return read_json(Path(tmp) / RECORD) if (Path(tmp) / RECORD).is_file() else None


def skipped(record: dict) -> str:
    "What a kernel's record says it ran and skipped, in words."
    ran, left = record.get('ran', []), record.get('skipped', [])
    if not left: return f"{len(ran)} runs finished, none skipped"
    return (f"{len(ran)} runs finished; {len(left)} skipped, as they would have ended past the session's time limit "
            f"({', '.join(left)}): the same `paddy kaggle run` pushes just those")


def log_text(raw: str) -> list[str]:
    "A kernel log's lines: Kaggle keeps a script's output as JSON records of {stream_name, time, data}."
    try: return ''.join(r.get('data', '') for r in json.loads(raw)).splitlines()
    except (ValueError, AttributeError, TypeError): return raw.splitlines()


def pattern(models: bool) -> str:
    """The output files to fetch: runs' metadata and predictions, the logs, a playbook's state, submission and reports,
    and the record; the .pkl only when asked."""
    return (r'^(models/[^/]+\.json|preds/[^/]+\.npz|sweeps/.+|playbooks/[^/]+/.+|submissions/[^/]+|reports/.+|'
            + re.escape(RECORD)
            + (r'|models/[^/]+\.pkl' if models else '') + ')$')


def fetched_files(folder: Path) -> list[Path]:
    """The files under a fetched `folder` but its locks (a sweep's or playbook's, left by a kernel stopped at its time
    limit): a lock names a process of the kernel's, not of this machine."""
    return [f for f in sorted(folder.rglob('*')) if f.is_file() and f.name != 'lock']


def pull_moves(got: Path, models: bool, test_ids: list[str], logs: Path) -> list[tuple[Path, Path]]:
    """(fetched, destination) for every finished run and log, predictions first; raises on a run that doesn't fit here.
    What was fetched is laid out as a project is: a workspace of its own."""
    out, theirs, ours = [], Workspace(got), here()
    for j in theirs.records():
        run, npz = j.stem, theirs.probs(j.stem)
        if not is_run_name(run) or not npz.is_file(): continue  # not a finished run
        ids = load_preds(npz, ('test_ids',)).get('test_ids')  # a run only screened has none until an ensemble
        if ids is not None and ids.tolist() != test_ids:
            raise PaddyError(f"{run}'s predictions are not of the test ids in your sample_submission.csv: pull into "
                             "the project of the same competition")
        pkl = theirs.model(run)
        out += [(npz, ours.probs(run))] + ([(pkl, ours.model(run))] if models and pkl.is_file() else []) + [
            (j, ours.record(run))]
    out += [(f, logs / f.relative_to(theirs.sweeps)) for f in fetched_files(theirs.sweeps)]
    for top in ('playbooks', 'submissions', 'reports'):  # a playbook run's, as `paddy playbook` left them there
        there, mine = getattr(theirs, top), getattr(ours, top)
        out += [(f, mine / f.relative_to(there)) for f in fetched_files(there)
                if top != 'playbooks' or f.parent != there]  # the playbook itself is yours, written flat
    if (got / RECORD).is_file(): out.append((got / RECORD, logs / RECORD))
    return out


def continued(got: Path) -> set[Path]:
    """The playbook folders here whose fetched state goes on from the one here: theirs replace these files, any other
    difference is a clash."""
    out = set()
    for f in sorted(Workspace(got).playbooks.glob('*/state.json')):
        mine = here().playbook_state(f.parent.name)
        if mine.is_file() and continues(read_json(mine), read_json(f)): out.add(mine.parent)
    return out


def same_bytes(x: Path, y: Path) -> bool:
    return x.stat().st_size == y.stat().st_size and x.read_bytes() == y.read_bytes()


def pull(kernel_: str | None = None, models: bool = False, data=None, log: Path | None = None) -> list[str]:
    """Fetch the kernel's finished runs into models/ and preds/ (the .pkl with `models`), and its logs into
    sweeps/<kernel>-v<N>/; nothing is overwritten. A failed kernel's log tail is shown, and what it finished is still
    pulled."""
    kernel_ = target(kernel_, log)
    test_ids = tst_items(find_data(data))[0]  # the local copy of the competition the runs must fit
    kaggle_api = api()
    ref = pinned(kaggle_api, kernel_)
    st, why = state(kaggle_api, ref)
    if st in WAITING: raise PaddyError(f"{ref} is {st}: pull it once `paddy kaggle status` says complete")
    owner_, slug, version = kaggle_api.parse_kernel_string(ref)
    logs = here().sweep(f'{slug}-v{version}' if version else slug)
    tmp = Path(tempfile.mkdtemp(prefix='paddy-pull-'))
    try:
        with kaggle_errors(thing=f'kernel {ref}'):  # the client's download bars only for the large .pkl
            kaggle_api.kernels_output(ref, str(tmp), file_pattern=pattern(models), quiet=not models)
        lines = log_text((tmp / f'{slug}.log').read_text()) if (tmp / f'{slug}.log').is_file() else []
        if st != 'complete':
            print(f'{ref} ended {st}' + (f' ({why})' if why else '') + '; the end of its log:')
            for line in lines[-20:]: print(f'  | {line}')
        plan = pull_moves(tmp, models, test_ids, logs)
        if lines:
            (tmp / 'kernel.log').write_text('\n'.join(lines) + '\n')
            plan.append((tmp / 'kernel.log', logs / 'kernel.log'))
        further = continued(tmp)
        clash = [d for s, d in plan if d.exists() and not same_bytes(s, d)
                 and not any(d.is_relative_to(f) for f in further)]
        if clash:
            raise PaddyError(f"{clash[0]} exists with other "
                             f"contents{f' (and {len(clash) - 1} more)' if len(clash) > 1 else ''}: "
                             "nothing was pulled; move it aside and pull again")
        brought = []
        for s, d in plan:
            if d.exists() and same_bytes(s, d): continue
            if d.exists():  # a playbook's state that the kernel took further: replaced whole
                with replaced(d) as t: shutil.copyfile(s, t)
            else:
                with written_once(d) as t: shutil.copyfile(s, t)  # refuses a file that appeared meanwhile
            if d.parent.name == 'models' and d.suffix == '.json': brought.append(d.stem)
    finally: shutil.rmtree(tmp, ignore_errors=True)
    where = (f"{len(brought)} new run{'s' * (len(brought) != 1)} from {ref} into models/ and preds/"
             + (', with their .pkl' if models else ''))
    print(f"pulled {where}; logs in {logs}/"
          + ('; `paddy results`, `paddy report` and `paddy ensemble` now include them' if brought else ''))
    if (logs / RECORD).is_file():
        record = read_json(logs / RECORD)
        print(f'{ref}: {skipped(record)}')
        if record.get('playbook'):
            print(f"{ref}: playbook run {record['run']} did {', '.join(record['stages']) or 'no stage'}; see "
                  f"playbooks/{record['run']}/, and `paddy kaggle run --playbook {record['playbook']}` goes on with it")
    if st == 'cancel_acknowledged':
        raise PaddyError(f"{ref} was cancelled or reached Kaggle's time limit: the same `paddy kaggle run` pushes "
                         "the runs left")
    if st != 'complete': raise PaddyError(f"{ref} ended {st}: fix what its log says, then `paddy kaggle run` again")
    return brought
