"""The memoised ISO texts equal ``isoformat`` for every time and spelling."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from schemas import canonical, isotext

moments = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31))
spellings = st.sampled_from(
    [
        lambda m: m.isoformat(),
        lambda m: m.isoformat().replace("+00:00", "Z"),
        lambda m: m.isoformat(timespec="milliseconds"),
        lambda m: m.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        lambda m: m.isoformat(timespec="microseconds"),
        lambda m: m.isoformat(timespec="seconds").replace("+00:00", "Z"),
        lambda m: m.isoformat(timespec="minutes"),
        lambda m: m.isoformat().replace("T", " "),
        lambda m: m.isoformat().replace(".", ","),
        lambda m: m.strftime("%Y%m%dT%H%M%S.%fZ"),
        lambda m: m.isoformat().replace("+00:00", ".1234567Z") if not m.microsecond else "x",
    ]
)


@given(moments, spellings, st.integers(-14 * 60, 14 * 60))
def test_noted_text_is_the_isoformat(naive: datetime, spell, minutes: int) -> None:  # type: ignore[no-untyped-def]
    moment = naive.replace(tzinfo=UTC)
    served = spell(moment)
    try:
        parsed = datetime.fromisoformat(served)
    except ValueError:
        return
    isotext.remember(parsed, served)
    assert isotext.utc_iso(parsed) == parsed.isoformat()
    assert isotext.utc_iso(moment) == moment.isoformat()
    try:  # the same instant in another zone is spelt in that zone
        elsewhere = parsed.astimezone(timezone(timedelta(minutes=minutes)))
    except OverflowError:
        return
    assert isotext.utc_iso(elsewhere) == elsewhere.isoformat()


@given(
    st.datetimes(timezones=st.just(UTC)).map(lambda m: m.isoformat().replace("+00:00", "Z"))
    | st.datetimes(timezones=st.just(UTC)).map(lambda m: m.isoformat(timespec="milliseconds"))
    | st.text(max_size=40)
)
def test_what_the_fast_path_reads_is_spelt_as_isoformat(value: str) -> None:
    try:
        parsed = canonical.moment(value)
    except ValueError:
        return
    assert isotext.utc_iso(parsed) == parsed.isoformat()


@given(st.dates() | st.datetimes() | st.datetimes(timezones=st.just(UTC)))
def test_day_iso(day: date) -> None:
    assert isotext.day_iso(day) == day.isoformat()
    assert isotext.day_iso(day) == day.isoformat()  # the memo's answer too


def test_memos_stay_bounded() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for k in range(3 * isotext.MEMO_SIZE + 10):
        moment = start + timedelta(microseconds=k)
        isotext.remember(moment, moment.isoformat())
        isotext.day_iso(date(2000, 1, 1) + timedelta(days=k))
    assert len(isotext._UTC) + len(isotext._UTC_OLD) <= 2 * isotext.MEMO_SIZE
    assert len(isotext._DAY) <= isotext.MEMO_SIZE
    assert isotext.utc_iso(start) == start.isoformat()  # forgotten: formatted again
    last = start + timedelta(microseconds=3 * isotext.MEMO_SIZE + 9)
    assert isotext._UTC_OLD.get(last) or isotext._UTC.get(last)  # the last ones are kept
