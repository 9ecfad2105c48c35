"""The handouts' pictures are drawn by the kit (docs/figures/make.py): the committed files are what the
script draws, and each is shown in both handouts with its alt text."""

import re
import subprocess
import sys

import pytest

from autograder import KIT

FIGURES = KIT / "docs" / "figures"
HANDOUTS = [KIT / "handout.md", KIT / "handout.ko.md"]
IMAGE = re.compile(r"!\[([^\]]*)\]\(docs/figures/([\w.]+)\)")


def drawn(names: list[str]) -> list[str]:
    return sorted(name for name in names if name.endswith(".png"))


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
    assert set(shown) == set(drawn([p.name for p in FIGURES.iterdir()]))
    assert all(len(alt) >= 60 for alt in shown.values()), shown  # says what the picture shows, not its name
    if handout.name == "handout.md":
        sys.path.insert(0, str(FIGURES))
        try:
            from make import ALT
        finally:
            sys.path.remove(str(FIGURES))
        assert shown == ALT
