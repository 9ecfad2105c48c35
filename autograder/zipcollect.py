"""nbgrader's zip_collect for the kit: each student's zip, named STUDENT.zip, as a learning platform's
download gives one per student (renamed so, if it names them otherwise), put in downloaded/NAME/archive/.

nbgrader extracts each into downloaded/NAME/extracted/STUDENT/ and asks its collector plugin, file by file,
whose file it is and where it goes. Collector takes the student from the zip's name and the file's path
from the top of the zip, or from inside the one folder at its top (students often zip their folder);
macOS's __MACOSX and ._ files and __pycache__ are left out. nbgrader's own FileNameCollectorPlugin collects
nothing until a regular expression is configured, and exits 0.
"""

import re
from pathlib import Path

from nbgrader.plugins import FileNameCollectorPlugin

EXTRACTED = re.compile(r".*/extracted/(?P<student>[^/]+)/(?P<path>.+)$")
LEFT_OUT = ("__MACOSX", "__pycache__", ".DS_Store")


class Collector(FileNameCollectorPlugin):
    """Whose file an extracted file is (the zip's name) and its path in the submission (from the zip's top)."""

    def collect(self, submitted_file: str) -> dict | None:
        if Path(submitted_file).suffix not in self.valid_ext:
            return None
        found = EXTRACTED.match(submitted_file)
        if found is None:
            self.log.warning("not in a student's zip (downloaded/NAME/extracted/STUDENT/): %s", submitted_file)
            return None
        parts = found["path"].split("/")
        if any(part in LEFT_OUT or part.startswith("._") for part in parts):
            return None
        top = Path(submitted_file).parents[len(parts) - 1]  # extracted/STUDENT: what the zip held at its top
        held = [p for p in top.iterdir() if p.name not in LEFT_OUT]
        if len(parts) > 1 and len(held) == 1 and held[0].is_dir():  # the zip of a folder: its files are inside
            parts = parts[1:]
        return {"student_id": found["student"], "file_id": "/".join(parts)}
