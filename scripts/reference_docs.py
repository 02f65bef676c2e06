"""Write the generated reference pages of docs/ from the code that declares what they list
(tests/test_docs.py checks that they are current):

- docs/cli-reference.md from the command's own --help;
- docs/options.md from the export options' declarations.

    .venv/bin/python scripts/reference_docs.py
"""

from pathlib import Path

from ocr_datasets import cli, options

if __name__ == "__main__":
    docs = Path(__file__).resolve().parents[1] / "docs"
    for name, text in (("cli-reference.md", cli.reference()), ("options.md", options.reference())):
        (docs / name).write_text(text, encoding="utf-8")
        print(f"wrote {docs / name}")
