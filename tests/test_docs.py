"""The documentation cannot drift: the CLI reference is the parser's own help, and every
parameter, flag, format and source kind is documented where a user looks for it."""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import inspect
import re
import sys
import tomllib
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


@pytest.mark.parametrize("script", sorted(path.name for path in (ROOT / "scripts").glob("finetune_*.py")))
def test_what_a_finetune_script_imports_comes_with_the_train_extra(script):
    # docs/training.md installs ocr-datasets[train] for the scripts: a package they import that
    # only the test extra brings fails a user's run after the model has loaded.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["train"]]
    installed = {re.split(r"[<>=!\[; ]", requirement, maxsplit=1)[0].lower() for requirement in wanted}
    tree = ast.parse((ROOT / "scripts" / script).read_text(encoding="utf-8"))
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0}
    distributions = importlib.metadata.packages_distributions()
    for module in (
        {name.partition(".")[0] for name in modules if name} - set(sys.stdlib_module_names) - {"ocr_datasets"}
    ):
        assert {name.lower() for name in distributions.get(module, [])} & installed, f"{script} imports {module}"
