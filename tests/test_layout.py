"""The package reads as a pipeline: imports go one way (every import counts, those inside functions too), `spec` sits
at the bottom, and only the CLI reaches the Kaggle stage."""
import ast, re
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / 'paddy'


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imports(path: Path) -> set[str]:
    "The paddy modules that `path` imports anywhere in it, by full name."
    me = module_name(path)
    package = me if path.name == '__init__.py' else me.rpartition('.')[0]
    known = {module_name(p) for p in PKG.rglob('*.py')}
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import): names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                up = package.split('.')[:len(package.split('.')) - node.level + 1]
                base = '.'.join(up + ([base] if base else []))
            # `from . import x` names a module; `from .m import f` names m
            names = [f'{base}.{a.name}' if f'{base}.{a.name}' in known else base for a in node.names]
        else: continue
        out |= {n for n in names if n in known and n != me}
    return out


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PKG.rglob('*.py')}


def cycle(g: dict[str, set[str]]) -> list[str] | None:
    "One import circle in `g`, as the path around it, or None."
    state, stack = {}, []
    def visit(m):
        state[m] = 'open'; stack.append(m)
        for n in sorted(g.get(m, ())):
            if state.get(n) == 'open': return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)): return found
        state[m] = 'done'; stack.pop()
        return None
    for m in sorted(g):
        if m not in state and (found := visit(m)): return found
    return None


def test_the_cycle_finder_finds_one():
    assert cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert cycle({'a': {'b'}, 'b': {'c'}, 'c': set()}) is None


def test_imports_go_one_way():
    g = graph()
    assert 'paddy.train.trainer' in g and 'paddy.predict' in g['paddy.train.trainer']  # the graph sees real imports
    assert cycle(g) is None, f"import circle: {' → '.join(cycle(g))}"


def test_spec_is_at_the_bottom():
    assert graph()['paddy.spec'] <= {'paddy.errors'}


def test_only_the_cli_reaches_kaggle():
    users = {m for m, deps in graph().items() if any(d.startswith('paddy.kaggle') for d in deps)}
    assert {u for u in users if not u.startswith('paddy.kaggle')} == {'paddy.cli'}


def reach(g: dict[str, set[str]], start: str) -> set[str]:
    "Every module `start` imports, directly or through others."
    seen, todo = set(), [start]
    while todo:
        for n in g.get(todo.pop(), ()):
            if n not in seen: seen.add(n); todo.append(n)
    return seen


def test_training_does_not_reach_interpretation_or_test_instrumentation():
    g = graph()
    for m in [m for m in g if m.startswith('paddy.train')]:
        assert 'paddy.interpret' not in reach(g, m), m
    # what counts a test's or a benchmark's host reads patches torch.Tensor: it lives in benchmarks/, never here
    assert not [p for p in PKG.rglob('*.py') if 'setattr(torch.Tensor' in p.read_text()]


def test_module_names_say_what_they_hold():
    "No module named run or runs (four were), and no two modules of one name: an import names one thing."
    stems = [p.stem for p in PKG.rglob('*.py') if p.name != '__init__.py']
    assert not {'run', 'runs'} & set(stems) and len(stems) == len(set(stems))


FOLDERS = ('models', 'preds', 'folds', 'sweeps', 'playbooks', 'submissions', 'reports')
BUILT = [re.compile(rf"Path\(['\"]({'|'.join(FOLDERS)}|data)['\"]"),     # a folder of the project, by name
         re.compile(rf"/ ?['\"]({'|'.join(FOLDERS)})['\"]"),              # joined onto some root
         re.compile(r"f['\"]\{[^}'\"]+\}\.(json|pkl|npz|state|folds)['\"]")]  # a run's file, named from its run
# the Kaggle notebook's script runs before paddy is installed there, so it lays out the kernel's project by hand
APART = {'workspace.py', 'kaggle/notebook.py'}


def artefact_paths(text: str) -> list[str]:
    """The lines of `text` that build a path of the project's layout themselves, instead of asking the workspace; a path
    beside paddy's own files (`__file__`: the playbooks it ships) is the package's, not the project's."""
    return [line.strip() for line in text.splitlines()
            if any(p.search(line) for p in BUILT) and '__file__' not in line]


def test_only_the_workspace_lays_out_the_project():
    bad = "f = models / f'{run}.pkl'\nout = Path('reports') / name\nlog = root / 'sweeps' / job\nok = ws.model(run)\n"
    assert artefact_paths(bad) == bad.splitlines()[:3]  # the check sees each way a path was built by hand
    found = {str(p.relative_to(PKG)): artefact_paths(p.read_text()) for p in PKG.rglob('*.py')}
    assert not {k: v for k, v in found.items() if v and k not in APART}


def test_a_run_record_is_read_by_field():
    "A RunRecord has no string keys to read, and its experiment is an Experiment: no `.get('…')` on either remains."
    from paddy.record import RunRecord
    from paddy.spec import Experiment
    rec = RunRecord(run='a-000001', experiment=dict(name='a', arch='resnet18', aug_sizes=[[64, 48]], gone=1))
    assert isinstance(rec.experiment, Experiment) and rec.experiment.aug_sizes == ((64, 48),) and rec.name == 'a'
    for obj in (rec, rec.experiment):
        assert not hasattr(obj, 'get') and not hasattr(obj, '__getitem__')
    uses = [f"{p.relative_to(PKG)}: {line.strip()}" for p in PKG.rglob('*.py') for line in p.read_text().splitlines()
            if re.search(r"\brec\.get\(|\bexperiment\.get\(", line)]  # a run record kept as a dict
    assert not uses
