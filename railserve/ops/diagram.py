"""The payment lifecycle drawn as SVG from `PaymentMachine` itself, never a copy by hand.

States are laid out in columns by their longest distance from the initial state and in
rows by the order the machine lists them; an arrow that skips a column bows upwards so
that it does not cross the boxes between. Colours and fonts come from the stylesheet
(classes only: the CSP forbids inline style).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from statemachine import StateMachine

from railserve.payment.machine import PaymentMachine
from railserve.vocabulary import label

BOX_W, BOX_H = 176, 40
COL_GAP, ROW_GAP = 280, 76
MARGIN = 36
TOP = 110  # room above the first row for loops and arrows that bow over it


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    event: str


def topology(machine: type[StateMachine] = PaymentMachine) -> tuple[list, list[Edge]]:
    states = list(machine.states)
    edges = [
        Edge(t.source.id, t.target.id, str(t.event)) for state in states for t in state.transitions
    ]
    return states, edges


def _layers(states: list, edges: list[Edge]) -> dict[str, int]:
    """Longest path from the initial state (self-loops ignored; the machine is acyclic)."""
    layer = {s.id: 0 for s in states}
    for _ in states:
        for edge in edges:
            if edge.source != edge.target:
                layer[edge.target] = max(layer[edge.target], layer[edge.source] + 1)
    return layer


def render(current: str | None = None, machine: type[StateMachine] = PaymentMachine) -> str:
    """An <svg> of the lifecycle with `current` (a state value) marked."""
    states, edges = topology(machine)
    layer = _layers(states, edges)
    rows: dict[int, int] = {}
    place: dict[str, tuple[int, int]] = {}
    for state in states:
        column = layer[state.id]
        row = rows.get(column, 0)
        rows[column] = row + 1
        place[state.id] = (MARGIN + column * COL_GAP, TOP + row * ROW_GAP)
    width = MARGIN * 2 + max(layer.values()) * COL_GAP + BOX_W
    height = TOP + MARGIN + max(rows.values()) * ROW_GAP
    current_name = next((label(s.value) for s in states if str(s.value) == current), None)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lifecycle" role="img" '
        f'viewBox="0 0 {width} {height}" aria-labelledby="lifecycle-title lifecycle-desc">',
        '<title id="lifecycle-title">Payment lifecycle</title>',
        f'<desc id="lifecycle-desc">{escape(_describe(states, edges, current_name))}</desc>',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'class="arrow-head"/></marker></defs>',
    ]
    for edge in edges:
        parts.append(_edge(edge, place, layer))
    for state in states:
        x, y = place[state.id]
        classes = ["state"]
        if str(state.value) == current:
            classes.append("current")
        if state.final:
            classes.append("final")
        parts.append(
            f'<g class="{" ".join(classes)}" data-state="{escape(str(state.value))}">'
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8"/>'
            f'<text x="{x + BOX_W / 2}" y="{y + BOX_H / 2 + 5}" text-anchor="middle">'
            f"{escape(label(state.value))}</text>"
            + (
                f'<text class="now" x="{x + BOX_W / 2}" y="{y + BOX_H + 16}" '
                'text-anchor="middle">current state</text>'
                if str(state.value) == current
                else ""
            )
            + "</g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _edge(edge: Edge, place: dict[str, tuple[int, int]], layer: dict[str, int]) -> str:
    sx, sy = place[edge.source]
    tx, ty = place[edge.target]
    label = escape(edge.event.replace("_", " "))
    if edge.source == edge.target:  # a loop over the top of the box
        x0, x1, y = sx + BOX_W * 0.35, sx + BOX_W * 0.65, sy
        return (
            f'<path class="transition" d="M{x0},{y} C{x0 - 10},{y - 34} {x1 + 10},{y - 34} '
            f'{x1},{y}" marker-end="url(#arrow)"/><text class="event" x="{sx + BOX_W / 2}" '
            f'y="{y - 30}" text-anchor="middle">{label}</text>'
        )
    x0, y0 = sx + BOX_W, sy + BOX_H / 2
    x1, y1 = tx, ty + BOX_H / 2
    if layer[edge.target] == layer[edge.source]:  # same column: down the side
        x0, y0, x1, y1 = sx + BOX_W / 2, sy + BOX_H, tx + BOX_W / 2, ty
    if layer[edge.target] - layer[edge.source] > 1:  # bow over the columns between
        lift = min(y0, y1) - 70
        mx = (x0 + x1) / 2
        return (
            f'<path class="transition" d="M{x0},{y0 - 8} Q{mx},{lift - 20} {x1},{y1 - 8}" '
            f'marker-end="url(#arrow)"/><text class="event" x="{mx}" y="{lift - 2}" '
            f'text-anchor="middle">{label}</text>'
        )
    return (
        f'<line class="transition" x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" '
        f'marker-end="url(#arrow)"/><text class="event" x="{(x0 + x1) / 2}" '
        f'y="{(y0 + y1) / 2 - 6}" text-anchor="middle">{label}</text>'
    )


def _describe(states: list, edges: list[Edge], current_name: str | None) -> str:
    names = {s.id: label(s.value) for s in states}
    moves = "; ".join(
        f"{names[e.source]} to {names[e.target]} ({e.event.replace('_', ' ')})" for e in edges
    )
    now = f"Current state: {current_name}. " if current_name else ""
    return f"{now}Transitions: {moves}."
