"""``hubconf.py`` read statically: its torch.hub entrypoints and the weight URLs they use.

The file is parsed with :mod:`ast` and never imported or executed. An entrypoint is a
top-level function whose name does not start with ``_`` (torch.hub's rule). Its weight URL
is found where it is written plainly: a string literal in the function, a module-level
name bound to one (``URL = "https://..."``), or a constant key into a module-level dict
(``model_urls["resnet18"]``). An entrypoint that could use more than one URL, or none that
can be seen, is reported without a file: we never guess.
"""

from __future__ import annotations

import ast
import logging
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from securitynet.scrapers.github_common import is_checkpoint

log = logging.getLogger(__name__)

_URL = re.compile(r"^https?://[^\s'\"]+$")
MAX_HUBCONF_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Entrypoint:
    name: str
    line: int
    doc: str | None
    #: Weight URLs the function can use (several: ambiguous; empty: none visible).
    urls: tuple[str, ...] = ()
    #: Why no single URL was taken, when that is the case.
    note: str | None = None

    @property
    def url(self) -> str | None:
        return self.urls[0] if len(self.urls) == 1 else None


@dataclass
class _Module:
    strings: dict[str, str] = field(default_factory=dict)
    tables: dict[str, dict[str, str]] = field(default_factory=dict)


def _weight_url(value: str) -> bool:
    if not _URL.match(value):
        return False
    path = urlsplit(value).path
    return is_checkpoint(path) or "/releases/download/" in path


def _module_constants(tree: ast.Module) -> _Module:
    found = _Module()
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if not isinstance(target, ast.Name):
                continue
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.strings[target.id] = value.value
            elif isinstance(value, ast.Dict):
                table = {
                    k.value: v.value
                    for k, v in zip(value.keys, value.values, strict=False)
                    if isinstance(k, ast.Constant) and isinstance(k.value, str)
                    and isinstance(v, ast.Constant) and isinstance(v.value, str)
                }
                if table:
                    found.tables[target.id] = table
    return found


def _function_urls(fn: ast.FunctionDef, module: _Module) -> tuple[list[str], str | None]:
    urls: list[str] = []
    note: str | None = None
    for node in ast.walk(fn):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _weight_url(node.value):
            urls.append(node.value)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in module.strings:
            if _weight_url(module.strings[node.id]):
                urls.append(module.strings[node.id])
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in module.tables:
            table = module.tables[node.value.id]
            key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value in table:
                if _weight_url(table[key.value]):
                    urls.append(table[key.value])
            else:
                note = f"looks {node.value.id}[...] up with a computed key"
    return list(dict.fromkeys(urls)), note


def parse_hubconf(source: str | bytes) -> list[Entrypoint]:
    """The entrypoints of a ``hubconf.py`` (empty when it does not parse)."""
    if len(source) > MAX_HUBCONF_BYTES:
        log.warning("hubconf.py is %d bytes; not read", len(source))
        return []
    try:
        tree = ast.parse(source, filename="hubconf.py")
    except (SyntaxError, ValueError) as exc:
        log.warning("hubconf.py does not parse: %s", exc)
        return []
    module = _module_constants(tree)
    out: list[Entrypoint] = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
            continue
        urls, note = _function_urls(node, module)
        doc = ast.get_docstring(node)
        if len(urls) > 1:
            note = f"uses {len(urls)} weight URLs"
        elif not urls:
            note = note or "no weight URL written in the function"
        else:
            note = None
        out.append(
            Entrypoint(node.name, node.lineno, doc.strip().splitlines()[0] if doc else None, tuple(urls), note)
        )
    return out
