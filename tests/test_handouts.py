"""The handouts and the README tell the truth: their runnable commands run, their rubric is the
grader's, the grader messages they quote are the grader's, and the two languages match."""

import json
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
    text = HANDOUTS[lang].read_text()
    assert rubric in text.split(APPENDIX[lang], 1)[1]  # in the appendix, not in the body


def graders(code: str):
    """What `code` prints (JSON), run beside autograder.grade, results and marks.CATEGORIES: the grader's own
    figures, read where the grader reads them (collect() runs pytest: not inside this one)."""
    ask = f"import json; from autograder import grade, results; from autograder.marks import CATEGORIES; {code}"
    run = subprocess.run([sys.executable, "-c", ask], cwd=KIT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


APPENDIX = {"en": "\n## Appendix: the rubric\n", "ko": "\n## 부록: 채점 기준\n"}
CATEGORY_ROW = re.compile(r"^\| `([^`]+)` \| [^|\n]* \| (\d+) \|$", flags=re.MULTILINE)  # | `Protocol` | ... | 39 |
TOTAL_ROW = re.compile(r"^\| \| \*\*[^*|\n]+\*\* \| \*\*(\d+)\*\* \|$", flags=re.MULTILINE)  # | | **total** | **100** |


@pytest.mark.parametrize("lang", HANDOUTS)
def test_the_body_gives_the_graders_category_totals(lang):
    """The body's small table of categories (the full rubric is the appendix's) holds the grader's totals."""
    total, categories = graders(
        "t = results.totals(grade.collect()); "
        "print(json.dumps([t.max_score, {CATEGORIES[c]: p for c, (_, p) in t.categories.items()}]))"
    )
    body = HANDOUTS[lang].read_text().split(APPENDIX[lang], 1)[0]
    assert {name: float(points) for name, points in CATEGORY_ROW.findall(body)} == categories
    assert [float(points) for points in TOTAL_ROW.findall(body)] == [total]
    assert "python -m autograder rubric" in body


GUIDES = [KIT / "README.md", *sorted((KIT / "docs").glob("*.md"))]


def section_references(text: str, lang: str) -> list[int]:
    """The section numbers a text points at, in order: "section 4", "sections 8 and 9", "8절과 9절"."""
    if lang == "ko":
        return [int(n) for n in re.findall(r"(\d+)절", text)]
    found = re.finditer(r"\b[Ss]ections?\s+(\d+)((?:,\s+\d+)*)(?:,?\s+and\s+(\d+))?", text)
    return [int(n) for m in found for n in [m[1], *re.findall(r"\d+", m[2]), m[3]] if n]


def test_every_section_reference_points_at_a_section_of_the_handout():
    """Both handouts point at the same sections, in the same order; they, the guides, the notebooks and the
    grader's messages point only at sections the handout has."""
    en, ko = (HANDOUTS[lang].read_text() for lang in ("en", "ko"))
    sections = {int(n) for n in re.findall(r"^## (\d+)\. ", en, flags=re.MULTILINE)}
    assert section_references(en, "en") == section_references(ko, "ko") and len(section_references(en, "en")) >= 10
    others = [*GUIDES, *KIT.glob("*/report.ipynb"), *(KIT / "autograder").rglob("*.py")]
    for path in [HANDOUTS["en"], *others]:
        assert set(section_references(path.read_text(), "en")) <= sections, path.name


@pytest.mark.parametrize("path", [*HANDOUTS.values(), *GUIDES], ids=lambda p: p.name)
def test_the_markdown_renders_no_emphasis_is_left_as_stars(path):
    """CommonMark does not close `*...*` after punctuation when a letter follows (Hangul included):
    `*시작 방식(start method)*에` shows its stars. Such stars are left in the rendered text."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(path.read_text())
    inline = [child for token in tokens if token.type == "inline" for child in token.children or []]
    texts = [child.content for child in inline if child.type == "text"]  # not code spans
    assert [text for text in texts if "*" in text] == []


# Each quote of the pitfalls (section 7) is what the grader prints: tests/test_bugs.py grades the mistake and
# asserts it.


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
    protocol = graders(
        "print(sum(r.max_points for r in grade.collect() if r.category == 'protocol' and r.mode == 'single'))"
    )
    assert f"{protocol:g} / {protocol:g} points" in output  # the grade block, against the reference in assignment/
    assert "end of file after" in output and "TcpExtListenOverflows" in output  # the experiments of section 9


AVOID = {"처리량": ["처리율"], "워커": ["작업자"], "단일 서버": ["single 서버", "싱글 서버"], "EOF": ["end-of-file"],
         "램프업": ["ramp-up", "램프 업"], "유휴": ["놀고", "노는"], "회수": ["거두", "거둡"],
         "관대한 클라이언트": ["너그러운"], "원시 소켓 클라이언트": ["raw 클라이언트", "raw client"],
         "선택": ["(optional)"], "닫힌 루프": ["closed loop", "폐쇄 루프"], "무릎 지점": ["knee"],
         "반복 서버": ["iterative"], "시작 방식": ["start method)", "시작 방법"],
         "임포트": ["import하", "import합", "import되"], "백로그": ["backlog"], "부하 생성기": ["load generator"],
         "사용자 생성 속도": ["spawn rate"], "자유 스레드 빌드": ["free-threaded", "프리 스레드"],
         "멀티스레드 서버": ["thread 서버"], "멀티프로세스 서버": ["process 서버"]}  # fmt: skip
# the other words once used, and the English the prose no longer leaves


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
