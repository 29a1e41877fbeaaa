"""The notebook runs top to bottom, so it never rots."""

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT


@pytest.mark.integration  # end to end, about 2 min
def test_escalation_notebook_executes():
    path = ROOT / "notebooks" / "escalation_accuracy.ipynb"
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2  # sweep plot + confusion matrix
    text = "".join(o.get("text", "") for o in outputs)
    assert "escalation rate" in text and "needed=" in text
