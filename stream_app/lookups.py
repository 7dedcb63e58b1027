"""The three seed questions answered from the live Redis aggregates (``query --source redis``).

Reads are one MULTI/EXEC snapshot (plus one boundary read for top-customer ties), so an
answer never mixes two halves of a batch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import redis

from common.errors import ServiceUnavailableError
from common.settings import Settings, mask_url
from schemas.answers import (
    Answer,
    CategoryRow,
    CustomerRow,
    MonthRow,
    monthly_first_day,
    sort_categories,
    sort_months,
    top_customers,
)
from stream_app.keys import RedisKeys

DEFAULT_TOP = 5


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _freshness(wm: dict[Any, Any], fresh: dict[Any, Any]) -> tuple[datetime | None, dict[int, int]]:
    offsets = {int(p): int(o) for p, o in wm.items()}
    stamps = [int(v) for v in fresh.values()]
    as_of = datetime.fromtimestamp(max(stamps) / 1000, UTC) if stamps else None
    return as_of, dict(sorted(offsets.items()))


def answer(
    settings: Settings, question: str, limit: int | None = None, *, now: datetime | None = None,
    client: redis.Redis | None = None,
) -> Answer:  # fmt: skip
    """``categories`` | ``top-customers`` | ``monthly`` with CONTRACT §6 rows and freshness."""
    keys = RedisKeys.of(settings)
    own = client is None
    r = client or redis.Redis.from_url(
        settings.redis_url, socket_timeout=10, socket_connect_timeout=3
    )
    try:
        return _answer(r, keys, question, limit, now or datetime.now(UTC))
    except redis.exceptions.ConnectionError as exc:
        raise ServiceUnavailableError(
            f"Redis does not answer at url={mask_url(settings.redis_url)} ({exc}); "
            "start it or set TXNPIPE_REDIS_URL"
        ) from None
    finally:
        if own:
            r.close()


def _answer(
    r: redis.Redis, keys: RedisKeys, question: str, limit: int | None, now: datetime
) -> Answer:
    pipe = r.pipeline(transaction=True)
    pipe.hgetall(keys.watermark)
    pipe.hgetall(keys.fresh)
    if question == "categories":
        pipe.hgetall(keys.category_count)
        pipe.hgetall(keys.category_cents)
        wm, fresh, counts, cents = pipe.execute()
        rows = [
            CategoryRow(_text(name), int(count), int(cents.get(name, 0)))
            for name, count in counts.items()
        ]
        result: tuple[Any, ...] = sort_categories(rows)
    elif question == "top-customers":
        n = DEFAULT_TOP if limit is None else limit
        pipe.zrevrange(keys.customer, 0, n - 1, withscores=True)
        wm, fresh, top = pipe.execute()
        ranked: dict[str, int] = {_text(m): int(s) for m, s in top}
        if len(top) == n:
            # ZREVRANGE breaks ties in reverse byte order; the contract wants customer_id
            # ascending: take everyone at the boundary score and let the sort decide.
            boundary = int(top[-1][1])
            tied: list[bytes] = r.zrangebyscore(keys.customer, boundary, boundary)  # type: ignore[assignment]
            for member in tied:
                ranked[_text(member)] = boundary
        result = top_customers([CustomerRow(c, s) for c, s in ranked.items()], n)
    elif question == "monthly":
        pipe.hgetall(keys.day)
        wm, fresh, days = pipe.execute()
        first = monthly_first_day(now).isoformat()
        months: dict[str, int] = {}
        for day, cents in days.items():
            d = _text(day)
            if d >= first:
                months[d[:7]] = months.get(d[:7], 0) + int(cents)
        result = sort_months([MonthRow(m, c) for m, c in months.items() if c])
    else:
        raise ValueError(f"unknown question {question!r}")
    as_of, offsets = _freshness(wm, fresh)
    return Answer(question, result, "redis", as_of=as_of, offsets=offsets)  # type: ignore[arg-type]


def answer_payload(settings: Settings, question: str, limit: int | None = None) -> dict[str, Any]:
    """The HTTP body of the worker's endpoints: CONTRACT §6 rows plus freshness."""
    ans = answer(settings, question, limit)
    return {
        "question": ans.question,
        "rows": ans.to_json(),
        "as_of": ans.as_of.isoformat() if ans.as_of else None,
        "offsets": {str(p): o for p, o in ans.offsets.items()},
        "source": ans.source,
    }
