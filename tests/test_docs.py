"""The docs stay true: every `paddy …` command and option, and every `make` target, that README.md, the Makefile and
docs/*.md show exists in the CLI itself (typer's click command tree) and in the Makefile."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / 'README.md', ROOT / 'Makefile', ROOT / 'CHANGELOG.md', *sorted((ROOT / 'docs').glob('*.md'))]
STOP = ('#', '|', '||', '&&', ';', '>', '2>&1', '→', '…', '\\')  # where a command's words end


def snippets(text: str, makefile: bool = False) -> list[str]:
    "The code a doc shows: fenced blocks and inline spans; a Makefile's recipes, and its help texts for `make`."
    if makefile: return text.splitlines()
    blocks = re.findall(r'```[^\n]*\n(.*?)```', text, re.S)
    prose = re.sub(r'```.*?```', '', text, flags=re.S)
    return [line for b in blocks for line in b.splitlines()] + re.findall(r'`([^`\n]+)`', prose)


def mentions(text: str, makefile: bool = False) -> list[list[str]]:
    "Each `paddy …` command line in `text`'s code, as its words up to a comment, pipe or redirect."
    out = []
    for snip in (l for l in text.splitlines() if l.startswith('\t')) if makefile else snippets(text):
        for m in re.finditer(r'(?:^|[\s(/\'"])paddy((?: +[^\s`]+)*)', snip):
            words = []
            for w in m.group(1).split():
                if w in STOP or w.startswith(('#', '>', '$(ARGS')): break
                words.append(w.strip('\'"),'))
            if words: out.append(words)
    return out


def check(words: list[str]) -> str | None:
    "What is wrong with `paddy WORDS` against the CLI, or None: an unknown command, or an option it does not take."
    import typer.main
    from paddy.cli import app
    cmd, path = typer.main.get_command(app), ['paddy']  # typer's own click: a group is a command with `commands`
    rest = list(words)
    while hasattr(cmd, 'commands') and rest and not rest[0].startswith('-'):
        w = rest.pop(0)
        if not re.fullmatch(r'[a-z][a-z-]*', w): return None  # a placeholder: paddy COMMAND --help
        if w not in cmd.commands: return f"{' '.join(path)} has no command '{w}'"
        cmd, path = cmd.commands[w], path + [w]
    opts = {o for p in cmd.params for o in (*p.opts, *getattr(p, 'secondary_opts', ()))} | {'--help'}
    for w in rest:
        if re.fullmatch(r'--?[a-z][a-z-]*(=.*)?', w) and w.split('=')[0] not in opts:
            return f"{' '.join(path)} takes no option {w.split('=')[0]}"
    return None


def make_targets() -> set[str]:
    return set(re.findall(r'^([a-z][a-z-]*):', (ROOT / 'Makefile').read_text(), re.M))


def test_every_paddy_command_and_option_the_docs_show_exists():
    found, wrong = 0, []
    for doc in DOCS:
        for words in mentions(doc.read_text(), makefile=doc.name == 'Makefile'):
            found += 1
            why = check(words)
            if why: wrong.append(f"{doc.relative_to(ROOT)}: `paddy {' '.join(words)}`: {why}")
    assert found > 100 and not wrong, '\n'.join(wrong)


def test_every_make_target_the_docs_show_exists():
    targets, wrong = make_targets(), []
    for doc in DOCS:
        for snip in snippets(doc.read_text(), makefile=doc.name == 'Makefile'):
            for t in re.findall(r'(?:^|[\s(`])make ([a-z][a-z-]*)', snip):
                if t not in targets: wrong.append(f'{doc.relative_to(ROOT)}: make {t}')
    assert {'demo', 'test', 'test-fast', 'train', 'help'} <= targets and not wrong, '\n'.join(wrong)


@pytest.mark.parametrize('doc, why', [
    ('run `paddy train tiny --sett epochs=1` first', "paddy train takes no option --sett"),
    ('```bash\npaddy sweep a b --repat 3   # three times\n```', 'paddy sweep takes no option --repat'),
    ('`paddy kaggle push x`', "paddy kaggle has no command 'push'"),
    ('`paddy predict RUN photos --top-k 3 --tta`', None),
    ('`.venv/bin/paddy export RUN --ensemble best --out x`', None)])
def test_the_check_fails_on_a_misspelt_option_or_command(doc, why):
    assert [check(w) for w in mentions(doc)] == [why]


def slug(heading: str) -> str:
    "GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."
    return re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')


def test_every_link_between_the_docs_leads_somewhere():
    wrong = []
    for doc in DOCS:
        if doc.suffix != '.md': continue
        for target in re.findall(r'\]\(([^)\s]+)\)', doc.read_text()):
            if re.match(r'[a-z]+:', target): continue  # a web address
            path, _, anchor = target.partition('#')
            dest = (doc.parent / path).resolve() if path else doc
            if not dest.exists(): wrong.append(f'{doc.relative_to(ROOT)}: {target}: no such file')
            elif anchor and dest.suffix == '.md' and anchor not in {slug(h) for h in re.findall(
                    r'^#+ (.*)$', dest.read_text(), re.M)}:
                wrong.append(f'{doc.relative_to(ROOT)}: {target}: no such heading')
    assert not wrong, '\n'.join(wrong)
