"""A custom import-linter contract: no import cycle between modules of a package.

import-linter's own ``acyclic_siblings`` checks packages; reluth's domain packages hold their
command modules (adapters) beside their services, so cycles are checked where they would hurt:
between modules (Tarjan's strongly connected components on grimp's import graph, every import
counted, lazy ones included).
"""

from __future__ import annotations

from typing import Any

from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The components of more than one module (each an import cycle), iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            if pending:
                nxt = pending.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


class AcyclicModulesContract(Contract):
    """No module of ``package`` takes part in an import cycle."""

    type_name = "acyclic_modules"

    package = fields.StringField()

    def check(self, graph: Any, verbose: bool) -> ContractCheck:
        prefix = str(self.package)
        modules = {m for m in graph.modules if m == prefix or m.startswith(prefix + ".")}
        edges = {
            m: {x for x in graph.find_modules_directly_imported_by(m) if x in modules}
            for m in modules
        }
        cycles = strongly_connected(edges)
        return ContractCheck(kept=not cycles, metadata={"cycles": cycles})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for cycle in check.metadata["cycles"]:
            output.print_error("Import cycle between: " + ", ".join(cycle))
            output.new_line()
