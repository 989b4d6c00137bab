"""The code a page shows of a package function: everything but the docstring."""

from __future__ import annotations

from d2lhelpers.book.source_code import function_code


def documented(x: int) -> int:
    """A docstring
    over two lines."""
    y = x + 1  # a comment stays
    return y


def undocumented(x: int) -> int:
    return x * 2


class Holder:
    def method(self) -> str:
        """Its docstring."""
        return "kept"


def test_the_docstring_is_left_out_and_the_code_kept() -> None:
    text = function_code(documented).data
    assert text.startswith("```python\ndef documented(x: int) -> int:\n")
    assert "docstring" not in text and "over two lines" not in text
    assert "    y = x + 1  # a comment stays\n    return y\n```" in text


def test_code_without_a_docstring_is_shown_whole() -> None:
    text = function_code(undocumented).data
    assert text == "```python\ndef undocumented(x: int) -> int:\n    return x * 2\n```"


def test_a_method_is_dedented() -> None:
    text = function_code(Holder.method).data
    assert text == '```python\ndef method(self) -> str:\n    return "kept"\n```'


def test_the_grad_cam_code_the_techniques_page_shows_fits_its_column() -> None:
    """The page shows these two functions; their code lines fit the page's 76 columns (the
    browser test's no-scroll-bar check, caught here without a build)."""
    from d2lhelpers.gradcam import cam_from_gradients, grad_cam

    for function in (grad_cam, cam_from_gradients):
        lines = function_code(function).data.splitlines()
        assert max(map(len, lines)) <= 76, function.__name__
