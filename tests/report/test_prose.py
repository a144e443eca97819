"""No result number in the book's prose is typed by hand: every figure is glued."""

from __future__ import annotations

import json
import re

from helpers import config

# Digits that may appear in prose: metric names (NDCG@5), the confidence level, log2,
# ordered-list markers and the documented parameter defaults (28-day windows, K = 5 / 10,
# the 30-customer small-segment flag, the 2019 EASE reference).
MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
ALLOWED = re.compile("|".join([
    r"@\d+", r"\b95%", r"^\s*\d+\.\s",                       # NDCG@5, 95% intervals, list markers
    r"\b\w*[A-Za-z]\d+\w*", r"\b\d+(st|nd|rd|th)\b",            # BM25, L2, log2, 50th (names, ranks)
    r"\b\d+(-\d+)?K\b", r"Python \d+\.\d+",                     # income band names, versions
    r"\btop \d+%", r"\b\d+% and \d+%", rf"\b\d+ ({MONTHS})",     # definitions of the analyses
    r"\b1 to 5\b", r"\b1 means\b", r"\bfrom \d+ to \d+\b", r"\bfurther from 1\b",  # score scales
    r"\b(28|5|10|30|2019|2020-12)\b",                             # documented parameter defaults
]), re.M)
STRIP = [
    re.compile(r"```.*?```", re.S),            # fenced blocks and directives
    re.compile(r"\{glue[^}]*\}`[^`]*`"),      # glue roles
    re.compile(r"`[^`]*`"),                    # inline code
    re.compile(r"\]\([^)]*\)"),                # link targets
    re.compile(r"^\(.*\)=\s*$", re.M),         # labels
]


def prose_sources():
    for path in sorted((config.PROJECT_ROOT / "book").glob("*.md")):
        yield path.name, path.read_text()
    for path in sorted(config.NOTEBOOKS_DIR.glob("*.ipynb")):
        nb = json.loads(path.read_text())
        for i, cell in enumerate(nb["cells"]):
            if cell["cell_type"] == "markdown":
                yield f"{path.name}[{i}]", "".join(cell["source"])


def stray_numbers(text: str) -> list[str]:
    for pattern in STRIP:
        text = pattern.sub(" ", text)
    text = ALLOWED.sub(" ", text)
    return re.findall(r"\d[\d,.]*", text)


def test_no_hand_typed_numbers_in_prose():
    offenders = {name: found for name, text in prose_sources() if (found := stray_numbers(text))}
    assert not offenders, f"numbers typed by hand (glue them instead): {offenders}"


def test_detector_catches_a_typed_number():
    assert stray_numbers("The hybrid reaches 0.4712 NDCG@5.") == ["0.4712"]
    assert stray_numbers("It reaches {glue:text}`hybrid_all_ndcg5:.4f` NDCG@5.") == []
