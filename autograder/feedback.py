"""What students receive of their autograded notebook: nbgrader's feedback, without the hidden tests.

nbgrader's generate_feedback renders the autograded notebook as it is, so the `### BEGIN HIDDEN TESTS`
blocks reach every student, in the cells and in the tracebacks of the tests that failed (nbgrader issues
#917 and #1363). HideHiddenTests, in the course's GenerateFeedback preprocessors (course.py writes them
into nbgrader_config.py, so a generate_feedback typed by hand uses it too), removes each hidden block
with nbgrader's own ClearHiddenTests, and cuts the traceback of a cell that held one to a line that says
which test cell failed: a traceback quotes the lines it ran.
"""

from nbconvert.preprocessors import Preprocessor
from nbgrader.preprocessors import ClearHiddenTests
from traitlets import Bool

HIDDEN_FAILED = "a test of this cell failed ({ename}); its hidden part is not shown"


class HideHiddenTests(Preprocessor):
    """Remove the hidden tests from a notebook, and from the tracebacks of the cells that held them."""

    enabled = Bool(True, help="nbconvert runs only enabled preprocessors (its own are off by default)").tag(config=True)

    def preprocess(self, nb, resources):
        clear = ClearHiddenTests(enforce_metadata=False)
        for cell in nb.cells:
            if cell.cell_type != "code" or clear.begin_test_delimeter not in cell.source:
                continue
            clear._remove_hidden_test_region(cell)
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [HIDDEN_FAILED.format(ename=output.get("ename", "an error"))]
                    output["evalue"] = ""
        return nb, resources
