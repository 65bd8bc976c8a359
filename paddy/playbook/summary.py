"""`playbooks/<run>/summary.md`: the candidates' table, what was chosen and why, each stage's time against its
estimate, and the ensemble behind the submission."""
from pathlib import Path

import pandas as pd

from .state import STAGES, State


def markdown_table(df: pd.DataFrame) -> str:
    head = '| ' + ' | '.join(df.columns) + ' |\n|' + ' --- |' * len(df.columns) + '\n'
    cell = lambda v: f'{v:.4f}' if isinstance(v, float) else str(v)  # noqa: E731
    return head + ''.join('| ' + ' | '.join(cell(v) for v in row) + ' |\n' for row in df.itertuples(index=False))


def write(s: State, name: str) -> Path:
    "Write the summary of where run `name` stands; it is rewritten after every stage."
    st, out = s.info['stages'], [f'# Playbook run {name}\n', f"Playbook `{s.info['args']['playbook']}`, data "
                                 f"`{s.info['args']['data']}`, budget {s.info['args']['hours'] or 'none'} h, started "
                                 f"{s.info['started']}.\n"]
    if st.get('screen', {}).get('why'): out += ['## Screening\n', f"{st['screen']['why']}.\n"]
    rank = s.folder / 'rank.csv'
    if rank.exists():
        p = pd.read_csv(rank)
        cols = [c for c in ('experiment', 'runs', 'error_rate', 'tta_error_rate', 'lo', 'hi', 'same_as_best',
                               'fit_time', 'score') if c in p]
        out += ['## Candidates (screening)\n', markdown_table(p[cols])]
    if 'rank' in st and st['rank'].get('unranked'):
        out += ['## Chosen\n', f"{', '.join(st['rank']['chosen'])}, unranked: nothing was screened (above).\n"]
    elif 'rank' in st:
        r = st['rank']
        out += ['## Chosen\n', f"By TTA error, with a paired bootstrap over the shared validation images: "
                f"{', '.join(r['chosen']) or 'none'}; {r['why']}. Better and faster than the median: "
                f"{', '.join(r['better_and_faster']) or 'none'}.\n"]
    if 'final' in st and st['final'].get('epochs'):
        why = st['final'].get('why') or ("the most at which every planned run fits the budget" if s.info['args'].get(
            'hours') else "the playbook's: no budget")
        at = f" at {st['final']['size']}" if st['final'].get('size') else ''
        out += [f"Final runs: {st['final']['epochs']} epochs{at} (fine_tune's frozen one aside): {why}.\n"]
    if 'final' in st and st['final'].get('dropped'):
        out += [f"Dropped by the time plan: {', '.join(e['label'] for e in st['final']['dropped'])}.\n"]
    rows = [dict(stage=k, seconds=st[k]['seconds'] if k in st else None,
                 estimate=st[k].get('estimate') if k in st else None, status='done' if k in st else 'to do')
            for k in STAGES]
    stages = pd.DataFrame(rows).astype(object)
    out += ['## Stages\n', markdown_table(stages.where(stages.notna(), ''))]
    if 'ensemble' in st:
        e = st['ensemble']
        ve = ('none (the runs share no validation split, or fitted on every image)' if e['valid_error'] is None
              else f"{e['valid_error']:.4f}")
        out += ['## Ensemble\n', f"{e['method']} of {len(e['members'])} runs; validation error {ve}; "
                f"submission `{e['csv']}`" + (f"; interpretation in `{e['interpret']}`" if e.get('interpret') else '')
                + '.\n', markdown_table(pd.DataFrame(dict(run=e['members'], weight=e['weights'])))]
    if 'submit' in st:
        out += [f"Checked: {st['submit']['checked']}. " + (f"Submitted: {st['submit']['submitted']}.\n"
                                                           if st['submit'].get('submitted') else 'Not submitted.\n')]
    f = s.folder / 'summary.md'
    f.write_text('\n'.join(out))
    return f
