"""The data card (`data/README.md`) states what `data/queries.jsonl` holds: its counts per label, its hard rows
and its total. When the file changes, the card must change with it."""

import json
import re
from collections import Counter

from tests.conftest import DATA, ROOT

CARD = ROOT / "data" / "README.md"


def _number(cell: str) -> int:
    return int(cell.strip().strip("*").replace(",", ""))


def test_the_card_counts_what_the_file_holds():
    rows = [json.loads(line) for line in DATA.open(encoding="utf-8") if line.strip()]
    labels = Counter(r["label"] for r in rows)
    hard = Counter(r["label"] for r in rows if r.get("hard"))
    table = re.findall(r"^\| \**(\w+)\** \| ([\d,*]+) \| ([\d,*]+) \|$", CARD.read_text(encoding="utf-8"), re.M)
    stated = {name: (_number(n), _number(h)) for name, n, h in table}
    assert stated.pop("total") == (len(rows), sum(hard.values()))
    assert stated == {label: (labels[label], hard[label]) for label in labels}
    intro = re.search(r"\*\*([\d,]+) user queries\*\*", CARD.read_text(encoding="utf-8"))
    assert intro is not None and _number(intro.group(1)) == len(rows)
