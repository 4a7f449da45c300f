"""The package's layout: no import circle between fastcf's modules, counting imports inside functions too (a lazy import
hides a circle without removing it). Imports under `if TYPE_CHECKING:` never run and are left out."""
import ast
from pathlib import Path
import fastcf

ROOT = Path(fastcf.__file__).parent

def _module(path:Path, root:Path) -> str:
    parts = path.relative_to(root.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)

def _is_type_checking(node:ast.If) -> bool:
    test = node.test
    return isinstance(test, ast.Name) and test.id == 'TYPE_CHECKING' or isinstance(test, ast.Attribute) and test.attr == 'TYPE_CHECKING'

def _imports(tree:ast.AST, module:str, is_package:bool):
    "Every (imported module, line) in `tree`, resolved to absolute names, skipping `if TYPE_CHECKING:` blocks"
    package = module if is_package else module.rpartition('.')[0]
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and _is_type_checking(node): todo.extend(node.orelse); continue
        todo.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import): yield from ((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                anchor = package.split('.')[:len(package.split('.')) - node.level + 1]
                base = '.'.join(anchor + ([base] if base else []))
            yield base, node.lineno
            for a in node.names: yield f"{base}.{a.name}", node.lineno     # `from fastcf import x` may name a module

def import_graph(root:Path=ROOT) -> dict:
    "{module: {imported fastcf module: line}} for every module of the package"
    files = {_module(p, root): p for p in sorted(root.rglob('*.py'))}
    graph = {}
    for name, path in files.items():
        edges = {}
        for target, line in _imports(ast.parse(path.read_text(), str(path)), name, path.name == '__init__.py'):
            if target in files and target != name: edges.setdefault(target, line)
        graph[name] = edges
    return graph

def find_cycle(graph:dict) -> list:
    "One import circle as [a, b, ..., a], or [] when there is none (depth-first search)"
    state, stack = {}, []
    def visit(node):
        state[node] = 'open'; stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 'open': return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)): return found
        state[node] = 'done'; stack.pop()
        return []
    for node in sorted(graph):
        if node not in state and (found := visit(node)): return found
    return []

def _describe(graph:dict, cycle:list) -> str:
    return ' → '.join(cycle) + '  (' + ', '.join(f"{a}:{graph[a][b]} imports {b}" for a, b in zip(cycle, cycle[1:])) + ')'


def test_the_check_finds_a_circle_through_a_lazy_import(tmp_path):
    pkg = tmp_path / 'pkg'; pkg.mkdir()
    (pkg / '__init__.py').write_text('')
    (pkg / 'a.py').write_text('from .b import f\n')
    (pkg / 'b.py').write_text('def f():\n    from pkg.c import g\n')
    (pkg / 'c.py').write_text('from typing import TYPE_CHECKING\nif TYPE_CHECKING: from pkg import b\nfrom pkg import a\n')
    graph = import_graph(pkg)
    assert graph['pkg.c'] == {'pkg': 3, 'pkg.a': 3}                  # the TYPE_CHECKING import is left out
    assert find_cycle(graph) == ['pkg.a', 'pkg.b', 'pkg.c', 'pkg.a']
    (pkg / 'c.py').write_text('from typing import TYPE_CHECKING\nif TYPE_CHECKING: from pkg import a\n')
    assert find_cycle(import_graph(pkg)) == []

def test_the_atomic_files_module_is_a_leaf():
    graph = import_graph()
    assert graph['fastcf.atomic'] == {}
    assert 'fastcf.atomic' in graph['fastcf.format'] and 'fastcf.atomic' in graph['fastcf.output']
    assert 'fastcf.export' not in graph['fastcf.output']

def test_no_import_circle():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert not cycle, f"import circle: {_describe(graph, cycle)}"


# Notebook order: each notebook comes after every notebook whose module it imports, in exported code (lazy imports too)
# and in test and example cells, so the docs read from the foundations up.
NBS = ROOT.parent / 'nbs'

# Test-cell imports of a later notebook that renumbering cannot remove, because the later module imports this one:
# {(this module, later module): why}. Each is a circle between pages, not between modules; keep the list short.
BACK_REFERENCES = {
    ('fastcf.format', 'fastcf.export'): "format's tests write and read real exports (read_export builds a CollabExport)",
    ('fastcf.format', 'fastcf.testing'): "format's tests make their exports with random_export",
    ('fastcf.solve', 'fastcf.foldin'): "solve's end-to-end checks go through fold_in, the API on top of it",
    ('fastcf.candidates', 'fastcf.predict'): "an `eval: false` measurement of iter_topk tunes SPARSE_SHARE",
}

def _cell_imports(src:str):
    "The fastcf modules a cell's source imports (`import fastcf.x`, `from fastcf.x import y`, `from fastcf import x`)"
    src = '\n'.join(l for l in src.split('\n') if not l.lstrip().startswith(('%', '!')))
    try: tree = ast.parse(src)
    except SyntaxError: return
    for node in ast.walk(tree):
        if isinstance(node, ast.Import): yield from (a.name for a in node.names if a.name.startswith('fastcf.'))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith('fastcf.'): yield node.module
            if node.module == 'fastcf': yield from (f"fastcf.{a.name}" for a in node.names)

def notebook_imports(nbs:Path=NBS) -> dict:
    "{notebook file name: (its module or None, {fastcf module it imports in any code cell})}"
    import json, re
    out = {}
    for path in sorted(nbs.glob('*.ipynb')):
        module, imports = None, set()
        for cell in json.loads(path.read_text())['cells']:
            if cell['cell_type'] != 'code': continue
            src = ''.join(cell['source'])
            if m := re.search(r'^#\|\s*default_exp\s+(\S+)', src, re.M): module = f"fastcf.{m.group(1)}"
            imports |= set(_cell_imports(src))
        out[path.name] = (module, imports - {module})
    return out

def later_imports(nbs:Path=NBS, allowed:dict=BACK_REFERENCES) -> list:
    "Every (notebook, imported notebook) where the imported one comes later in name order, less `allowed`"
    found = notebook_imports(nbs)
    page = {module: name for name, (module, _) in found.items() if module}
    return [(name, page[m]) for name, (module, imports) in found.items() for m in sorted(imports)
            if m in page and page[m] > name and (module, m) not in allowed]

def _notebook(path:Path, module:str, code:str):
    cells = [dict(cell_type='code', source=f"#| default_exp {module}", metadata={}, outputs=[], execution_count=None),
             dict(cell_type='code', source=code, metadata={}, outputs=[], execution_count=None)]
    path.write_text(__import__('json').dumps(dict(cells=cells, metadata={}, nbformat=4, nbformat_minor=5)))

def test_the_order_check_finds_a_later_import(tmp_path):
    _notebook(tmp_path / '00_a.ipynb', 'a', 'x = 1')
    _notebook(tmp_path / '01_b.ipynb', 'b', '#| export\ndef f():\n    from fastcf import c')   # lazy, in exported code
    _notebook(tmp_path / '02_c.ipynb', 'c', 'import fastcf.a')
    assert later_imports(tmp_path, {}) == [('01_b.ipynb', '02_c.ipynb')]
    _notebook(tmp_path / '00_a.ipynb', 'a', 'from fastcf.b import f\ntest_eq(f(), None)')       # a test cell
    assert later_imports(tmp_path, {}) == [('00_a.ipynb', '01_b.ipynb'), ('01_b.ipynb', '02_c.ipynb')]
    assert later_imports(tmp_path, {('fastcf.a', 'fastcf.b'): 'why'}) == [('01_b.ipynb', '02_c.ipynb')]

def test_each_notebook_comes_after_what_it_imports():
    assert later_imports() == []
    found = notebook_imports()
    page = {module: name for name, (module, _) in found.items() if module}
    for (module, later), why in BACK_REFERENCES.items():      # every excuse is still needed
        assert later in found[page[module]][1] and page[later] > page[module], (module, later, why)
