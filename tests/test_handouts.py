"""The handouts and the README tell the truth: their runnable commands run, their rubric is the
grader's, the grader messages they quote are the grader's, and the two languages match."""

import re
import subprocess
import sys

import pytest

from autograder import KIT

from documents import blocks, copy_of_the_kit, paste_in_order

HANDOUTS = {"en": KIT / "handout.md", "ko": KIT / "handout.ko.md"}
QUOTE = {"en": "> **The grader says:** `", "ko": "> **채점기 메시지:** `"}


def test_both_handouts_have_the_same_sections_commands_and_numbers():
    en, ko = (HANDOUTS[lang].read_text() for lang in ("en", "ko"))

    def outline(text):
        return [(len(m[1]), m[2]) for m in re.finditer(r"^(#+) (\d*)", text, flags=re.MULTILINE)]

    assert outline(en) == outline(ko) and len(outline(en)) >= 12
    assert blocks(HANDOUTS["en"]) == blocks(HANDOUTS["ko"])
    numbers = re.compile(r"(?<![\d.])\d+(?:\.\d+)?(?!\d)")  # no \b: in Korean, a number touches its unit
    assert sorted(numbers.findall(en)) == sorted(numbers.findall(ko))
    assert [q.split("`")[1] for q in en.splitlines() if q.startswith(QUOTE["en"])] == [
        q.split("`")[1] for q in ko.splitlines() if q.startswith(QUOTE["ko"])
    ]


@pytest.mark.parametrize("lang", HANDOUTS)
def test_the_handout_quotes_the_graders_own_rubric(lang):
    rubric = subprocess.run(
        [sys.executable, "-m", "autograder", "rubric"], cwd=KIT, capture_output=True, text=True, check=True
    ).stdout
    assert rubric in HANDOUTS[lang].read_text()


GUIDES = [KIT / "README.md", *sorted((KIT / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", [*HANDOUTS.values(), *GUIDES], ids=lambda p: p.name)
def test_the_markdown_renders_no_emphasis_is_left_as_stars(path):
    """CommonMark does not close `*...*` after punctuation when a letter follows (Hangul included):
    `*시작 방식(start method)*에` shows its stars. Such stars are left in the rendered text."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(path.read_text())
    inline = [child for token in tokens if token.type == "inline" for child in token.children or []]
    texts = [child.content for child in inline if child.type == "text"]  # not code spans
    assert [text for text in texts if "*" in text] == []


# Each quote of §10 is what the grader prints: tests/test_bugs.py grades the mistake and asserts it.


def test_the_tasks_of_the_handout_are_the_tasks_of_the_skeletons():
    row = r"^\| (\d+)(?: \(optional\))? \| `(\w+\.py)` \| `(\w+)\("
    tasks = re.findall(row, HANDOUTS["en"].read_text(), flags=re.MULTILINE)
    assert [int(n) for n, _, _ in tasks] == list(range(1, 11))
    for number, file, function in tasks:
        skeleton = (KIT / "assignment" / file).read_text()
        assert re.search(rf"def {function}\(.*\n\s+\"\"\"Task {number}[ .]", skeleton), (number, function)


NOT_RUN = {  # the blocks the tests do not paste, by first line, and why
    "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt": "the set-up itself: CI runs exactly it",
    "python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt": "the same set-up",
    "locust -f locustfile.py --master": "load from several machines",
    "python -m autograder compare --preset report": "10000 users: minutes, and a raised open-file limit",
    "python -m autograder compare  ": "the quick preset: a minute; the block after it runs the same code, shorter",
    "python -m autograder compare assignment --preset lesson": "eight minutes; the short sweep beside it runs",
}
DOCUMENTS = [*GUIDES, HANDOUTS["en"]]  # the Korean handout's blocks are the English one's (tested above)


def test_every_shell_block_is_run_by_the_tests_or_says_why_not():
    for path in [*DOCUMENTS, HANDOUTS["ko"]]:
        for info, body in blocks(path):
            if info.split()[:1] == ["bash"] and "runnable" not in info:
                assert any(body.startswith(first) for first in NOT_RUN), (path.name, body[:80])


def test_the_handouts_blocks_run_pasted_in_order_into_one_shell(tmp_path):
    """As a student pastes them (the README's are run by test_docs.py, on another worker)."""
    output = paste_in_order(copy_of_the_kit(tmp_path), HANDOUTS["en"])
    assert "13 / 13 points" in output  # the grade block, against the reference copied into assignment/
    assert "end of file after" in output and "TcpExtListenOverflows" in output  # the experiments of section 7


AVOID = {"처리량": ["처리율"], "워커": ["작업자"], "단일 서버": ["single 서버"], "EOF": ["end-of-file"],
         "램프업": ["ramp-up"], "유휴": ["놀고"], "회수": ["거두", "거둡"]}  # fmt: skip  # the other words once used


def glossary(text: str) -> dict[str, str]:
    """{English: Korean} of a handout's glossary (its last table)."""
    table = text.rsplit("| English | 한국어 |", 1)[1]
    rows = [line.split("|")[1:3] for line in table.strip().splitlines()[1:] if line.startswith("|")]
    return {english.strip(): korean.strip() for english, korean in rows}


def test_both_handouts_end_with_one_glossary_and_the_korean_keeps_to_it():
    en, ko = (HANDOUTS[lang].read_text() for lang in ("en", "ko"))
    terms = glossary(ko)
    assert terms == glossary(en) and len(terms) >= 15
    prose = ko.rsplit("## 용어집", 1)[0]
    for korean in terms.values():
        assert korean in prose, korean  # each term is used
        for other in AVOID.get(korean, []):
            assert other not in prose, (korean, other)  # and no other word for it
