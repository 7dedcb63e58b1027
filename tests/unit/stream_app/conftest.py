"""The fold tests run twice: records cleaned by the full rules and by the fast path."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from schemas.transaction import fast_path, use_fast_path


@pytest.fixture(scope="module", params=["full", "fast"], ids=lambda p: f"cleaning={p}",
                autouse=True)  # fmt: skip
def cleaning_path(request: pytest.FixtureRequest) -> Iterator[str]:
    was = fast_path()
    use_fast_path(request.param == "fast")
    yield request.param
    use_fast_path(was)
