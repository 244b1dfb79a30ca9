"""The README stays true to the code it documents."""

from pathlib import Path

from railserve.config import Settings
from railserve.payment.machine import PaymentMachine

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_shows_the_current_state_diagram():
    assert f"{PaymentMachine:mermaid}".strip() in README


def test_readme_documents_every_setting():
    from dataclasses import fields

    for item in fields(Settings):
        if item.name != "currency":
            assert f"RAILSERVE_{item.name.upper()}" in README
