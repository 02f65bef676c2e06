"""Write docs/cli-reference.md from the command's own --help (tests/test_docs.py checks it is current).

    .venv/bin/python scripts/cli_reference.py
"""

from pathlib import Path

from ocr_datasets.cli import reference

if __name__ == "__main__":
    target = Path(__file__).resolve().parents[1] / "docs" / "cli-reference.md"
    target.write_text(reference(), encoding="utf-8")
    print(f"wrote {target}")
