"""The import rules of docs/architecture.md hold: its table of who imports
whom is compared with the code, so the page cannot go stale and the layers
cannot quietly grow into each other (an app importing the other app, a tool
importing an app)."""
import ast
import re
from pathlib import Path

from serving import ROOT

DOC = Path(ROOT) / 'docs' / 'architecture.md'
APPS = {'sim_api', 'minitwit'}


def documented():
    """{'sim_api.py': {...}, 'scripts/ops/': {...}} from the doc's table."""
    text = DOC.read_text(encoding='utf-8')
    section = text.split('## Who imports whom', 1)[1]
    table = re.search(r'```text\nmodule +imports\n(.*?)```', section, re.S).group(1)
    rules = {}
    for line in table.strip().splitlines():
        name, *imports = line.split()
        rules[name] = set() if imports == ['-'] else set(imports)
    return rules


def own_names():
    """The names under which MiniTwit's own modules are imported: a module
    or package at the root, or a folder of scripts/ (scripts.ops...)."""
    root = Path(ROOT)
    return {p.stem for p in root.glob('*.py')} | \
        {p.name for p in root.iterdir()
         if (p / '__init__.py').exists() and p.name != 'scripts'} | \
        {'scripts.' + p.name for p in (root / 'scripts').iterdir()
         if (p / '__init__.py').exists()}


def own_name(module):
    """scripts.ops.progress -> scripts.ops; database.mysql -> database."""
    parts = module.split('.')
    return '.'.join(parts[:2 if parts[0] == 'scripts' else 1])


def imports_of(path, own):
    tree = ast.parse(path.read_text(encoding='utf-8'))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {own_name(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(own_name(node.module))
    return found & own


def actual(rules):
    own, root = own_names(), Path(ROOT)
    seen = {}
    for name in rules:
        files = sorted((root / name).glob('*.py')) if name.endswith('/') \
            else [root / name]
        seen[name] = set().union(*(imports_of(f, own) for f in files))
    return seen


def test_every_module_is_in_the_table():
    rules = documented()
    listed = {name.removesuffix('.py').removesuffix('/').replace('/', '.')
              for name in rules}
    assert own_names() == listed


def test_the_code_imports_what_the_table_says():
    rules = documented()
    assert actual(rules) == rules


def test_the_rules_the_table_promises():
    rules = documented()
    assert not rules['sim_api.py'] & APPS and not rules['minitwit.py'] & APPS
    for layer in ('models.py', 'database/', 'scripts/ops/', 'scripts/bench/',
                  'scripts/simulator/'):
        assert not rules[layer] & APPS, layer
    assert rules['database/'] == {'database'}
    assert rules['scripts/simulator/'] <= {'scripts.ops'}
