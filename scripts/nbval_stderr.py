"""A pytest plugin for nbval: a notebook cell whose stderr carries a warning or an error fails.

nbval's lax mode checks that every cell runs and that cells tagged ``nbval-check-output`` print
what the notebook stores; it ignores what the other cells write to stderr. On Colab a
deprecation warning or a failed import printed there is what the learner sees, so
``make notebooks`` loads this plugin (``-p nbval_stderr``) to fail on it as well, by the same
rule as the checks that execute the pages themselves (``scripts/notebook_exec.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from notebook_exec import stderr_problems


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    result = yield
    outputs = getattr(item, "test_outputs", None)  # set by nbval's cell item after it ran
    if outputs is not None and (found := stderr_problems(outputs)):
        pytest.fail("stderr of this cell:\n" + "\n---\n".join(found), pytrace=False)
    return result
