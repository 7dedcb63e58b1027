import pytest

from tests.parallel import shares_a_fixture


def _order(item: pytest.Item) -> tuple[bool, bool]:
    """Integration tests first; of those, the slow ones not bound to their module first."""
    integration = item.get_closest_marker("integration") is not None
    return not integration, shares_a_fixture(item) or item.get_closest_marker("slow") is None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
    # A stable sort (a module keeps its order): under pytest -n (tests/parallel.py) the
    # longest tests start first and the short ones fill the gaps, none starts last.
    items.sort(key=_order)
