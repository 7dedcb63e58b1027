"""Every cleaning test runs twice: against the full rules and against the fast path.

The fast path (``schemas.canonical``, one msgspec decode per message) must give exactly the
results of the full rules, so the same tests, unchanged, run against each: with
``cleaning=fast`` the ``clean_*`` names a test module imported are its fast counterparts
and ``parse_message`` takes the fast path; with ``cleaning=full`` both are the full rules.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from schemas import canonical
from schemas.transaction import fast_path, use_fast_path

FAST = {
    "clean_id": canonical.ident,
    "clean_category": canonical.category,
    "clean_amount": canonical.cents,
    "clean_date": canonical.day,
    "clean_status": canonical.status,
    "clean_updated_at": canonical.moment,
}


@pytest.fixture(scope="module", params=["full", "fast"], ids=lambda p: f"cleaning={p}",
                autouse=True)  # fmt: skip
def cleaning_path(request: pytest.FixtureRequest) -> Iterator[str]:
    was = fast_path()
    with pytest.MonkeyPatch.context() as patch:
        use_fast_path(request.param == "fast")
        if request.param == "fast":
            for name, fast in FAST.items():
                if hasattr(request.module, name):
                    patch.setattr(request.module, name, fast)
        yield request.param
    use_fast_path(was)
