"""The handouts' pictures are drawn by the kit (docs/figures/make.py): the committed files are what the
script draws, and each is shown in both handouts with its alt text. A measured picture (timeline.png) is
written by the benchmark that measured it, with a Markdown file beside it that says how, and its alt text."""

import re
import subprocess
import sys

import pytest

from autograder import KIT

FIGURES = KIT / "docs" / "figures"
HANDOUTS = [KIT / "handout.md", KIT / "handout.ko.md"]
IMAGE = re.compile(r"!\[([^\]]*)\]\(docs/figures/([\w.]+)\)")


MEASURED = {"timeline.png": "benchmarks/timeline.py"}  # picture -> the benchmark that measures it


def drawn(names: list[str]) -> list[str]:
    """The pictures among names that make.py draws (not the measured ones)."""
    return sorted(name for name in names if name.endswith(".png") and name not in MEASURED)


def alt_text(picture: str) -> str:
    """A measured picture's alt text, from the file its benchmark wrote beside it."""
    (line,) = [
        line
        for line in (FIGURES / picture).with_suffix(".md").read_text().splitlines()
        if line.startswith("Alt text: ")
    ]
    return line.removeprefix("Alt text: ")


def test_the_committed_pictures_are_the_ones_the_script_draws(tmp_path):
    run = subprocess.run([sys.executable, FIGURES / "make.py", tmp_path], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    made = drawn([p.name for p in tmp_path.iterdir()])
    assert made == drawn([p.name for p in FIGURES.iterdir()]) and len(made) >= 3
    for name in made:  # `python docs/figures/make.py` draws them again
        assert (tmp_path / name).read_bytes() == (FIGURES / name).read_bytes(), f"{name} is out of date"


@pytest.mark.parametrize("handout", HANDOUTS, ids=lambda p: p.name)
def test_each_picture_is_in_the_handout_with_its_alt_text(handout):
    shown = {name: alt for alt, name in IMAGE.findall(handout.read_text())}
    assert set(drawn(list(shown))) == set(drawn([p.name for p in FIGURES.iterdir()]))
    assert set(shown) <= {p.name for p in FIGURES.iterdir()}
    assert all(len(alt) >= 60 for alt in shown.values()), shown  # says what the picture shows, not its name
    for picture in set(shown) & set(MEASURED):
        if handout.name == "handout.md":
            assert shown[picture] == alt_text(picture), picture  # as its benchmark wrote it
    shown = {name: alt for name, alt in shown.items() if name not in MEASURED}
    if handout.name == "handout.md":
        sys.path.insert(0, str(FIGURES))
        try:
            from make import ALT
        finally:
            sys.path.remove(str(FIGURES))
        assert shown == ALT


@pytest.mark.parametrize("picture", sorted(MEASURED))
def test_a_measured_picture_is_a_real_image_with_the_file_its_benchmark_wrote_beside_it(picture):
    """The picture and its Markdown exist; the Markdown names the benchmark, the command it ran, the kit's
    commit, the machine and the alt text (the picture itself is measured: not compared byte for byte)."""
    import matplotlib.image

    image, notes = FIGURES / picture, (FIGURES / picture).with_suffix(".md")
    assert image.is_file() and notes.is_file()
    text = notes.read_text()
    assert f"`python {MEASURED[picture]}`" in text and "`python -m autograder compare solution --timeline`" in text
    assert re.search(r"the kit at [0-9a-f]{7,40}(-dirty)?\b", text), text[:500]
    assert re.search(r"\d+ cores .*CPython 3\.\d+\.\d+\S* with the GIL (enabled|disabled)", text), text[:500]
    assert re.search(r"on 20\d\d-\d\d-\d\d", text)
    alt = alt_text(picture)
    assert len(alt) >= 200 and all(server in alt for server in ("single server", "process server", "thread server"))
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(image)
    assert pixels.shape[0] > 800 and pixels.shape[1] > 800 and pixels.std() > 0.05  # a picture, not a blank
