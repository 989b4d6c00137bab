"""A function's code shown on a page: its source without the docstring, as Markdown."""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable

from IPython.display import Markdown


def function_code(function: Callable) -> Markdown:
    """``function``'s source as a Python code block, its docstring (if any) left out; a
    method's indentation removed."""
    source = textwrap.dedent(inspect.getsource(function))
    lines = source.splitlines()
    body = ast.parse(source).body[0].body
    first = body[0]
    docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    if docstring and isinstance(first.value.value, str):
        del lines[first.lineno - 1 : first.end_lineno]
    return Markdown("```python\n" + "\n".join(lines) + "\n```")
