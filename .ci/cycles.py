#!/usr/bin/env python3
"""Fails on a module cycle in src/: dependencies must point one way.

Each file belongs to its top-level module (src/foo.rs and src/foo/** are
`foo`). An edge foo -> bar is a `crate::bar` path in foo's code: a `use
crate::bar::..`, a `use crate::{bar, ..}` or a `crate::bar::X` in an
expression. A name the crate root re-exports (`crate::Outcome`) counts as
an edge to the module it comes from. Not counted: comments (doc comments
included), string literals, items under `#[cfg(test)]` (a test may reach
anywhere), and edges from the roots (lib.rs and main.rs, which declare the
modules). cli.rs belongs to the binary: it is listed as a module of its
own, and a `crate::` path in it would name main.rs's modules (it has
none). `super::` paths are not followed: in a top-level module they name
the crate root, which is what `crate::` is for.

Prints every cycle (a strongly connected component of more than one module)
with the edges that make it, as file:line, and exits 1; with none, prints
the modules in an order where each uses only modules below it, and exits 0.

Usage: python3 .ci/cycles.py [SRC_DIR]   (default: src next to .ci)
"""

import re
import sys
from pathlib import Path

ROOTS = {"lib", "main"}


def blank(text, start, end):
    """`text[start:end]` as spaces, newlines kept so lines still count."""
    return re.sub(r"[^\n]", " ", text[start:end])


RAW_STRING = re.compile(r'b?r(#*)"')
CHAR = re.compile(r"'(\\.[^']{0,8}|[^'\\])'")


def strip_comments_and_strings(text):
    """The code with comments and the contents of literals blanked out."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end == -1 else end
            out.append(blank(text, i, end))
            i = end
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text, i, j))
            i = j
        elif (m := RAW_STRING.match(text, i)) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            close = '"' + m.group(1)
            end = text.find(close, m.end())
            end = n if end == -1 else end + len(close)
            out.append(blank(text, i, end))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(blank(text, i, j + 1))
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a).
            m = CHAR.match(text, i)
            if m:
                out.append(blank(text, i, m.end()))
                i = m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching_brace(code, open_at):
    """The index just past the `}` that closes the `{` at `open_at`."""
    depth = 0
    for j in range(open_at, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(code)


CFG_TEST = re.compile(r"#\[\s*cfg\s*\(\s*test\s*\)\s*\]")


def strip_test_items(code):
    """The code with every `#[cfg(test)]` item blanked out; also the names
    of out-of-line modules declared under it (`#[cfg(test)] mod tests;`)."""
    test_modules = []
    while True:
        m = CFG_TEST.search(code)
        if m is None:
            return code, test_modules
        # The item runs to its first `;` or to the brace closing its first
        # `{`, whichever comes first.
        semi = code.find(";", m.end())
        brace = code.find("{", m.end())
        semi = len(code) if semi == -1 else semi
        brace = len(code) if brace == -1 else brace
        if semi < brace:
            end = semi + 1
            declared = re.match(r"(?:\s*#\[[^\]]*\])*\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;",
                                code[m.end():end])
            if declared:
                test_modules.append(declared.group(1))
        else:
            end = matching_brace(code, brace)
        code = code[:m.start()] + blank(code, m.start(), end) + code[end:]


def module_of(path, src):
    """The top-level module a file belongs to."""
    parts = path.relative_to(src).parts
    return parts[0] if len(parts) > 1 else path.stem


def reexports(lib_code, modules):
    """Names the crate root re-exports from a module: name -> module."""
    names = {}
    for m in re.finditer(r"\bpub\s+use\s+(\w+)::(\{[^}]*\}|[^;]+);", lib_code):
        if m.group(1) not in modules:
            continue
        for item in re.split(r"[,{}\s]+", m.group(2)):
            if item:
                # `a as b`, `a::b`: the name it is known by at the root.
                names[item.split("::")[-1]] = m.group(1)
        names.update({alias: m.group(1) for alias in re.findall(r"\bas\s+(\w+)", m.group(2))})
    return names


PATH = re.compile(r"(?<![\w$])crate::(\{|\w+)")


def edges_of(code, resolve):
    """(target module, offset) for every `crate::` path in `code`."""
    for m in PATH.finditer(code):
        if m.group(1) != "{":
            target = resolve(m.group(1))
            if target:
                yield target, m.start()
            continue
        group_end = matching_brace(code, m.end() - 1)
        # The group's top-level names: `use crate::{a::X, b, c::{Y, Z}}`.
        depth, name_start = 0, m.end()
        for j in range(m.end(), group_end):
            ch = code[j]
            if ch == "{":
                depth += 1
            elif ch == "}" and depth > 0:
                depth -= 1
            elif depth == 0 and ch in ",}":
                name = re.match(r"\s*(\w+)", code[name_start:j])
                if name and resolve(name.group(1)):
                    yield resolve(name.group(1)), m.start()
                name_start = j + 1


def strongly_connected(graph):
    """Tarjan's algorithm: the components, each a list of modules."""
    index, low, stack, on_stack, result = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            result.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    # Tarjan finds components dependencies first.
    return result


def main():
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "src"
    files = sorted(src.rglob("*.rs"))
    modules = {module_of(f, src) for f in files} - ROOTS
    lib = src / "lib.rs"
    lib_code = strip_comments_and_strings(lib.read_text()) if lib.exists() else ""
    names = reexports(lib_code, modules)

    def resolve(name):
        return name if name in modules else names.get(name)

    codes = {f: strip_comments_and_strings(f.read_text(encoding="utf-8")) for f in files}
    test_only = set()
    for f, code in codes.items():
        code, declared = strip_test_items(code)
        codes[f] = code
        children = f.parent if f.name == "mod.rs" else f.with_suffix("")
        for name in declared:
            test_only.update({children / f"{name}.rs", children / name / "mod.rs"})
            test_only.update((children / name).rglob("*.rs"))

    graph = {m: set() for m in modules}
    where = {}  # (from, to) -> ["file:line", ..]
    for f in files:
        source = module_of(f, src)
        if source in ROOTS or f in test_only:
            continue
        code = codes[f]
        for target, offset in edges_of(code, resolve):
            if target == source:
                continue
            graph[source].add(target)
            line = code.count("\n", 0, offset) + 1
            where.setdefault((source, target), []).append(f"{f.relative_to(src.parent)}:{line}")

    components = strongly_connected(graph)
    cycles = [c for c in components if len(c) > 1]
    if cycles:
        for component in cycles:
            print("cycle: " + " <-> ".join(component))
            for a in component:
                for b in sorted(graph[a] & set(component)):
                    print(f"  {a} -> {b}: {', '.join(where[(a, b)])}")
        print(f"{len(cycles)} module cycle(s) in {src}")
        return 1
    print("no module cycles; each module uses only modules below it:")
    for (module,) in reversed(components):
        uses = ", ".join(sorted(graph[module]))
        print(f"  {module}" + (f" -> {uses}" if uses else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
