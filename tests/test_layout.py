"""The test suite's own rules, read from the source with ast (no test module is imported):
every test states in a docstring what it proves, and every module of greeterd with logic has
a test module of its own, so a module's tests are found by its name."""

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "greeterd"
#: Modules with no logic to test: the version, and `python -m greeterd`'s two lines.
NO_LOGIC = {"__init__", "__main__"}


def collected_tests(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The functions pytest collects as tests: test* at module level, and test* methods of
    Test* classes."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test"
        ):
            yield node
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for member in node.body:
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef) and (
                    member.name.startswith("test")
                ):
                    yield member


def undocumented(source: str, name: str) -> list[str]:
    """'FILE:LINE NAME' of each test in ``source`` without a docstring."""
    tree = ast.parse(source, filename=name)
    return [
        f"{name}:{function.lineno} {function.name}"
        for function in collected_tests(tree)
        if not (ast.get_docstring(function) or "").strip()
    ]


def test_every_test_has_a_docstring():
    """Each test function in tests/ (test_*.py, any depth) has a docstring saying what it
    proves: a new test without one fails here, with its file, line and name."""
    modules = sorted(TESTS.rglob("test_*.py"))
    assert len(modules) > 20, "the test modules were not found: this proves nothing"
    missing = [
        problem
        for module in modules
        for problem in undocumented(module.read_text(), str(module.relative_to(TESTS.parent)))
    ]
    assert missing == [], "tests without a docstring:\n" + "\n".join(missing)


def test_the_docstring_check_finds_what_it_looks_for():
    """The check above is not vacuous: it reports tests without a docstring (or with an
    empty one) at module level and in Test* classes, and leaves helpers alone."""
    source = '''
def test_documented():
    """Proves a thing."""

def test_bare():
    assert True

async def test_async_bare():
    pass

def test_blank():
    """  """

def helper():
    pass

class TestGroup:
    def test_method(self):
        pass

    def helper(self):
        pass

class Helper:
    def test_not_collected(self):
        pass
'''
    assert undocumented(source, "sample.py") == [
        "sample.py:5 test_bare",
        "sample.py:8 test_async_bare",
        "sample.py:11 test_blank",
        "sample.py:18 test_method",
    ]


def test_every_module_with_logic_has_its_own_test_module():
    """greeterd/NAME.py is tested in tests/test_NAME.py, for every module but those with no
    logic: a new module without a test module fails here, by name."""
    modules = {path.stem for path in PACKAGE.glob("*.py")} - NO_LOGIC
    assert len(modules) > 10, "the package's modules were not found: this proves nothing"
    untested = sorted(name for name in modules if not (TESTS / f"test_{name}.py").is_file())
    assert untested == [], f"modules without tests/test_<module>.py: {untested}"
