"""The documentation cannot drift: the CLI reference is the parser's own help, and every
parameter, flag, format and source kind is documented where a user looks for it."""

from __future__ import annotations

import argparse
import inspect
import re
from pathlib import Path

import pytest

import ocr_datasets
from ocr_datasets import FORMAT_NAMES, SOURCE_KINDS, cli, options

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def doc(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def test_the_cli_reference_is_what_help_prints():
    assert doc("cli-reference.md") == cli.reference(), "docs/cli-reference.md is stale: run scripts/reference_docs.py"


def test_the_options_page_is_what_the_declarations_say():
    assert doc("options.md") == options.reference(), "docs/options.md is stale: run scripts/reference_docs.py"


def test_every_flag_has_help_text():
    parser = cli._parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    for name, command in commands.choices.items():
        for action in command._actions:
            assert action.help, f"ocr-datasets {name} {'/'.join(action.option_strings) or action.dest} has no help text"


@pytest.mark.parametrize(
    "function",
    [
        "export",
        "export_all",
        "build_dataset",
        "read_samples",
        "read_manifest",
        "validate",
        "load_batch",
        "list_exports",
    ],
)
def test_every_parameter_of_the_python_api_is_documented(function):
    documented = doc("python-api.md")
    assert f"`{function}(" in documented, f"{function} is missing from docs/python-api.md"
    for parameter in inspect.signature(getattr(ocr_datasets, function)).parameters:
        assert re.search(rf"\b{parameter}\b", documented), f"{function}({parameter}=...) is not in docs/python-api.md"


def test_every_format_and_source_kind_is_documented():
    for export_format in FORMAT_NAMES:
        assert f"`{export_format}`" in doc("formats.md"), f"format {export_format} is not in docs/formats.md"
    for kind in SOURCE_KINDS:
        assert re.search(rf"`(--from )?{re.escape(kind)}[` ]", doc("sources.md")), (
            f"source kind {kind} is not in docs/sources.md"
        )


def test_readme_is_short_and_links_every_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    for page in DOCS.glob("*.md"):
        assert f"docs/{page.name}" in readme, f"README does not link docs/{page.name}"
