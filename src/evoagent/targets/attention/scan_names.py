"""Name resolution for the legality scan: which scope binds each name, and the qualified names it may hold.

Python's rules, read from the syntax tree: module, function (and lambda), class and comprehension
scopes; `global` and `nonlocal`; class bodies invisible to the scopes nested in them; a walrus in a
comprehension binding in the enclosing function; a comprehension's first iterable evaluated outside
it. A name used in a scope that does not bind it (nor any enclosing function, nor the module) is a
builtin. Each scope keeps, per name, every qualified name (`torch.nn.functional`) that an import or
a plain assignment there binds to it, so a name assigned twice may be either, and a name shadowed in
one function keeps its meaning everywhere else.
"""

from __future__ import annotations

import ast
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

TYPE_OF = "type(...)"  # the qualified name given to `type(x)`: some class
_ROUNDS = 6  # alias chains resolved (F = torch.nn.functional; sdpa = F.scaled_dot_product_attention; ...)
_MOST_VALUES = 64  # per name: a file that makes more (x = x.a; x = x.b; ...) must not make the scan slow


class ScopeKind(str, enum.Enum):
    MODULE = "module"
    FUNCTION = "function"
    CLASS = "class"
    COMPREHENSION = "comprehension"


@dataclass(eq=False, slots=True)
class Scope:
    """One scope while the tree is read: what it binds and declares, and the qualified names bound."""

    kind: ScopeKind
    parent: Scope | None
    bound: set[str] = field(default_factory=set)
    declared_global: set[str] = field(default_factory=set)
    declared_nonlocal: set[str] = field(default_factory=set)
    values: dict[str, set[str]] = field(default_factory=dict)
    strings: dict[str, set[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Binding:
    """A place that binds `name` (assignment, import, def, class, parameter, loop, with, except, match)."""

    name: str
    line: int
    scope: ScopeKind
    is_definition: bool  # a `def` or `class` statement (a method in a class body)


class Names:
    """The scopes of one module's tree, for resolving the names the scan meets."""

    def __init__(self, tree: ast.Module) -> None:
        collector = _Collector()
        collector.visit(tree)
        self.module = collector.module
        self.bindings: tuple[Binding, ...] = tuple(collector.bindings)
        self._scope_of = collector.scope_of
        for scope in collector.scopes:
            _move_declared(scope, self.module)
        self._resolve(collector.assignments)

    def binding_scope(self, node: ast.Name) -> Scope | None:
        """The scope whose binding a use of `node` reads, or None for a builtin."""
        return _lookup(self._scope_of[node], node.id, self.module)

    def is_builtin(self, node: ast.Name) -> bool:
        """True unless a scope binds the name (a Name this reading never met counts as a builtin)."""
        return node not in self._scope_of or self.binding_scope(node) is None

    def qualnames(self, node: ast.AST) -> frozenset[str]:
        """Every qualified name a Name or attribute chain may stand for (empty when none is known)."""
        if isinstance(node, ast.Name):
            if node not in self._scope_of:
                return frozenset()
            scope = self.binding_scope(node)
            return frozenset(scope.values.get(node.id, ())) if scope is not None else frozenset()
        if isinstance(node, ast.Attribute):
            return frozenset(f"{base}.{node.attr}" for base in self.qualnames(node.value) if len(base) < 1000)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "type" \
                and len(node.args) == 1 and self.is_builtin(node.func):
            return frozenset([TYPE_OF])  # a class as reachable as a module: `type(q).add = ...` patches torch.Tensor
        return frozenset()

    def strings(self, node: ast.AST) -> frozenset[str]:
        """The constant strings an expression may be: literals, `+` of them, names bound only to them."""
        if isinstance(node, ast.Constant):
            return frozenset([node.value]) if isinstance(node.value, str) else frozenset()
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.strings(node.left), self.strings(node.right)
            return frozenset(a + b for a in left for b in right if len(a) + len(b) < 1000) \
                if len(left) * len(right) <= _MOST_VALUES else frozenset()
        if isinstance(node, ast.Name) and node in self._scope_of:
            scope = self.binding_scope(node)
            return frozenset(scope.strings.get(node.id, ())) if scope is not None else frozenset()
        return frozenset()

    def _resolve(self, assignments: list[tuple[Scope, str, ast.expr | str]]) -> None:
        for _ in range(_ROUNDS):
            changed = False
            for scope, name, value in assignments:
                owner = _owner(scope, name, self.module)
                found_names = frozenset([value]) if isinstance(value, str) else self.qualnames(value)
                found_strings = frozenset() if isinstance(value, str) else self.strings(value)
                for table, found in ((owner.values, found_names), (owner.strings, found_strings)):
                    known = table.setdefault(name, set())
                    if not found <= known and len(known) < _MOST_VALUES:
                        known.update(sorted(found - known)[:_MOST_VALUES - len(known)])
                        changed = True
            if not changed:
                return


def _owner(scope: Scope, name: str, module: Scope) -> Scope:
    """The scope a binding of `name` in `scope` writes (after `global` / `nonlocal`)."""
    if name in scope.declared_global:
        return module
    if name in scope.declared_nonlocal:
        outer = scope.parent
        while outer is not None and outer.kind is not ScopeKind.MODULE:
            if outer.kind is not ScopeKind.CLASS and (name in outer.bound or name in outer.declared_nonlocal):
                return _owner(outer, name, module)
            outer = outer.parent
    return scope


def _move_declared(scope: Scope, module: Scope) -> None:
    for name in scope.declared_global | scope.declared_nonlocal:
        if name in scope.bound:
            _owner(scope, name, module).bound.add(name)


def _lookup(scope: Scope, name: str, module: Scope) -> Scope | None:
    if name in scope.declared_global or name in scope.declared_nonlocal:
        owner = _owner(scope, name, module)
        return owner if name in owner.bound else None
    if name in scope.bound:
        return scope
    outer = scope.parent
    while outer is not None and outer.kind is not ScopeKind.MODULE:
        if outer.kind is not ScopeKind.CLASS and name in outer.bound | outer.declared_global | outer.declared_nonlocal:
            return _lookup(outer, name, module)
        outer = outer.parent
    return module if name in module.bound else None


class _Collector(ast.NodeVisitor):
    """Walks the tree once: creates the scopes, records every binding and which scope each Name is in."""

    def __init__(self) -> None:
        self.module = Scope(ScopeKind.MODULE, None)
        self.scope = self.module
        self.scopes: list[Scope] = [self.module]
        self.scope_of: dict[ast.Name, Scope] = {}
        self.bindings: list[Binding] = []
        self.assignments: list[tuple[Scope, str, ast.expr | str]] = []

    def bind(self, name: str, node: ast.AST, *, scope: Scope | None = None, definition: bool = False) -> None:
        where = scope or self.scope
        where.bound.add(name)
        self.bindings.append(Binding(name=name, line=getattr(node, "lineno", 0), scope=where.kind,
                                     is_definition=definition))

    def enter(self, kind: ScopeKind) -> Scope:
        scope = Scope(kind, self.scope)
        self.scopes.append(scope)
        return scope

    def visit_in(self, scope: Scope, nodes: Sequence[ast.AST]) -> None:
        saved, self.scope = self.scope, scope
        for node in nodes:
            self.visit(node)
        self.scope = saved

    def visit_Name(self, node: ast.Name) -> None:
        self.scope_of[node] = self.scope
        if not isinstance(node.ctx, ast.Load):
            self.bind(node.id, node)

    def visit_Global(self, node: ast.Global) -> None:
        self.scope.declared_global.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.scope.declared_nonlocal.update(node.names)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            local = alias.asname or alias.name.split(".")[0]
            self.bind(local, node)
            self.assignments.append((self.scope, local, alias.name if alias.asname else local))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self.bind(alias.asname or alias.name, node)
                if node.module and not node.level:
                    self.assignments.append((self.scope, alias.asname or alias.name, f"{node.module}.{alias.name}"))

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self.record_target(target, node.value)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.record_target(node.target, node.value)
        self.generic_visit(node)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        if isinstance(node.iter, (ast.Tuple, ast.List, ast.Set)):
            for element in node.iter.elts:
                self.record_target(node.target, element)
        self.generic_visit(node)

    visit_AsyncFor = visit_For

    def record_target(self, target: ast.expr, value: ast.expr) -> None:
        if isinstance(target, ast.Name):
            self.assignments.append((self.scope, target.id, value))
        elif isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)) \
                and len(target.elts) == len(value.elts):
            for part, part_value in zip(target.elts, value.elts, strict=True):
                self.record_target(part, part_value)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        scope = self.scope
        while scope.kind is ScopeKind.COMPREHENSION and scope.parent is not None:
            scope = scope.parent
        self.scope_of[node.target] = self.scope
        self.bind(node.target.id, node.target, scope=scope)
        if scope is not self.scope:  # the comprehension reads it from the enclosing scope
            declared = self.scope.declared_nonlocal if scope.kind is ScopeKind.FUNCTION else self.scope.declared_global
            declared.add(node.target.id)
        self.assignments.append((scope, node.target.id, node.value))
        self.visit(node.value)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.visit_in(self.scope, [*node.decorator_list, *node.args.defaults,
                                   *(d for d in node.args.kw_defaults if d is not None),
                                   *_annotations(node.args), *([node.returns] if node.returns else [])])
        self.bind(node.name, node, definition=True)
        scope = self.enter(ScopeKind.FUNCTION)
        for arg in _arguments(node.args):
            self.bind(arg.arg, arg, scope=scope)
        self.visit_in(scope, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.visit_in(self.scope, [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)])
        scope = self.enter(ScopeKind.FUNCTION)
        for arg in _arguments(node.args):
            self.bind(arg.arg, arg, scope=scope)
        self.visit_in(scope, [node.body])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.visit_in(self.scope, [*node.decorator_list, *node.bases, *node.keywords])
        self.bind(node.name, node, definition=True)
        self.visit_in(self.enter(ScopeKind.CLASS), node.body)

    def visit_comprehension_node(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp) -> None:
        first, *rest = node.generators
        self.visit(first.iter)
        scope = self.enter(ScopeKind.COMPREHENSION)
        parts: list[ast.AST] = [first.target, *first.ifs]
        for generator in rest:
            parts += [generator.iter, generator.target, *generator.ifs]
        parts += [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        self.visit_in(scope, parts)

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = visit_comprehension_node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.bind(node.name, node)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self.bind(node.name, node)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.bind(node.name, node)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self.bind(node.rest, node)
        self.generic_visit(node)


def _arguments(args: ast.arguments) -> list[ast.arg]:
    return [*args.posonlyargs, *args.args, *([args.vararg] if args.vararg else []), *args.kwonlyargs,
            *([args.kwarg] if args.kwarg else [])]


def _annotations(args: ast.arguments) -> list[ast.expr]:
    return [a.annotation for a in _arguments(args) if a.annotation is not None]
