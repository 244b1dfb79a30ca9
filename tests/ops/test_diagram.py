"""The lifecycle diagram is drawn from PaymentMachine, with the current state marked."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from railserve.ops import diagram
from railserve.payment.machine import PaymentMachine

SVG = "{http://www.w3.org/2000/svg}"


def test_every_state_and_transition_of_the_machine_is_drawn():
    svg = ET.fromstring(diagram.render("pending"))
    states = {g.get("data-state") for g in svg.iter(f"{SVG}g") if g.get("data-state")}
    assert states == {str(s.value) for s in PaymentMachine.states}
    transitions = [t for s in PaymentMachine.states for t in s.transitions]
    drawn = [e for e in svg if e.get("class") == "transition"]
    assert len(drawn) == len(transitions) == 7
    description = svg.find(f"{SVG}desc").text
    assert "Successful to Partly refunded (refund part)" in description
    assert "Partly refunded to Partly refunded (refund part)" in description


def test_the_current_state_is_marked():
    svg = diagram.render("partially_refunded")
    current = re.findall(r'<g class="([^"]*current[^"]*)" data-state="([^"]+)"', svg)
    assert current == [("state current", "partially_refunded")]
    assert "Current state: Partly refunded." in svg
    assert "style" not in svg


def test_a_new_transition_appears_without_touching_the_drawing():
    from statemachine import State, StateMachine

    class Tiny(StateMachine):
        a = State(initial=True)
        b = State(final=True)
        go = a.to(b)

    svg = diagram.render("a", machine=Tiny)
    assert svg.count('class="transition"') == 1 and "A to B (go)" in svg


async def test_the_detail_page_shows_the_diagram(operator, paid):
    html = await operator.text(f"/ops/payments/{paid}")
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="lifecycle"' in html
    assert 'class="state current" data-state="success"' in html
