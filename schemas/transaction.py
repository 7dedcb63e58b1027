"""Raw API bytes → clean ``Transaction`` or a ``Rejection`` (CONTRACT §1).

A raw message is one JSON object or a JSON array of them (CONTRACT §3). JSON numbers are
read as ``int``/``Decimal``; NaN/Infinity, deep nesting and bad UTF-8 are rejections, never
exceptions: bad records are data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar, cast

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from schemas import canonical
from schemas.cleaning import (
    CleaningError,
    clean_amount,
    clean_category,
    clean_date,
    clean_id,
    clean_status,
    clean_updated_at,
)
from schemas.rules import NO_RULES, Rules, rewrite

Status = Literal["pending", "approved", "declined", "reversed"]
REQUIRED_FIELDS = (
    "transaction_id",
    "customer_id",
    "transaction_amount",
    "transaction_date",
    "status",
    "updated_at",
)


class Transaction(BaseModel):
    """One clean version of a transaction; money in integer cents, times in UTC."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    transaction_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    product_category: str = Field(min_length=1)
    amount_cents: int = Field(gt=0, le=100_000_000)
    transaction_date: date
    status: Status
    updated_at: datetime

    @property
    def amount(self) -> Decimal:
        return Decimal(self.amount_cents).scaleb(-2)


@dataclass(frozen=True, slots=True)
class Rejection:
    """An invalid record: machine-readable reason, human detail, its exact raw bytes."""

    reason: str
    detail: str
    raw: bytes
    transaction_id: str | None = None
    index: int | None = None  # position within a batch message


@dataclass(frozen=True, slots=True)
class Accepted:
    """A record that passed cleaning, with its position within the message."""

    transaction: Transaction
    index: int | None = None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_M = TypeVar("_M", bound=BaseModel)


def construct(cls: type[_M], **values: Any) -> _M:
    """``cls.model_construct(**values)`` for trusted values naming EVERY field, minus
    pydantic's per-field loop: about 2x faster, and the stream builds ~4 per record."""
    return construct_from(cls, values)


# BaseModel's slots, set through their descriptors (``object.__setattr__`` looks each up)
_set_dict = object.__setattr__
_set_fields = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def construct_from(cls: type[_M], values: dict[str, Any]) -> _M:
    """``construct`` of a dict the caller built (and gives up): no ``**`` packing, which
    costs as much as the rest of it."""
    obj = cls.__new__(cls)
    _set_dict(obj, "__dict__", values)
    _set_fields(obj, set(values))
    _set_extra(obj, None)
    _set_private(obj, None)
    return obj


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)
_WS = " \t\n\r"


def clean_record(obj: Any) -> Transaction:
    """A decoded API record → clean Transaction; raises CleaningError with the reason."""
    if not isinstance(obj, dict):
        raise CleaningError(
            "not_an_object", f"record is a JSON {type(obj).__name__}, not an object"
        )
    for field in REQUIRED_FIELDS:
        if field not in obj or obj[field] is None:
            raise CleaningError(f"missing_{field}", f"{field} is missing")
    updated_at = clean_updated_at(obj["updated_at"])
    return construct(
        Transaction,
        transaction_id=clean_id(obj["transaction_id"], "transaction_id"),
        customer_id=clean_id(obj["customer_id"], "customer_id"),
        product_category=clean_category(obj.get("product_category")),
        amount_cents=clean_amount(obj["transaction_amount"]),
        transaction_date=clean_date(obj["transaction_date"], updated_at),
        status=cast(Status, clean_status(obj["status"])),
        updated_at=updated_at,
    )


def clean_record_fast(obj: Any) -> Transaction:
    """``clean_record`` with each field through its fast path (``schemas.canonical``): same
    fields checked in the same order, so the same value or the same first error."""
    if type(obj) is not dict:
        return clean_record(obj)
    get = obj.get
    tid, customer = get("transaction_id"), get("customer_id")
    amount, served_date = get("transaction_amount"), get("transaction_date")
    served_status, served_at = get("status"), get("updated_at")
    if (
        tid is None or customer is None or amount is None
        or served_date is None or served_status is None or served_at is None
    ):  # fmt: skip
        return clean_record(obj)  # raises missing_<field> for the first one missing
    updated_at = canonical.moment(served_at)
    return construct_from(
        Transaction,
        {
            "transaction_id": canonical.ident(tid, "transaction_id"),
            "customer_id": canonical.ident(customer, "customer_id"),
            "product_category": canonical.category(get("product_category")),
            "amount_cents": canonical.cents(amount),
            "transaction_date": canonical.day(served_date, updated_at),
            "status": canonical.status(served_status),
            "updated_at": updated_at,
        },
    )


# The fast path (schemas.canonical, one msgspec decode per message) or the full rules alone;
# both give the same results (tests/unit/schemas run against each). Switch: ``use_fast_path``.
_clean = clean_record_fast
_FAST_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_RAW_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])


def use_fast_path(on: bool) -> None:
    """Clean with the fast path (default) or with the full rules only (tests, benchmarks)."""
    global _clean
    _clean = clean_record_fast if on else clean_record


def fast_path() -> bool:
    return _clean is clean_record_fast


def _decode(value: bytes, text: str) -> Any:
    """One msgspec decode (ints stay ints, numbers with a fraction become Decimal, exactly as
    the stdlib decoder below reads them); anything it refuses is decided by the stdlib
    decoder, which raises the error the rejection reports."""
    if _clean is clean_record_fast:
        try:
            return _FAST_DECODER.decode(value)
        except Exception:  # whatever it is (a Decimal overflow too), the stdlib decides below
            pass
    return _DECODER.decode(text)


def readable_id(obj: Any) -> str | None:
    """The record's transaction id if one can be read (for keys and DLQ context)."""
    if isinstance(obj, dict):
        try:
            return clean_id(obj.get("transaction_id"), "transaction_id")
        except CleaningError:
            return None
    return None


# Accepted(...) without the frozen dataclass's __init__ (two object.__setattr__ calls)
_new_accepted = object.__new__
_set_transaction: Any = vars(Accepted)["transaction"].__set__
_set_index: Any = vars(Accepted)["index"].__set__


def _one(obj: Any, raw: bytes, index: int | None, rules: Rules = NO_RULES) -> Accepted | Rejection:
    try:
        txn = _clean(obj)
    except CleaningError as exc:
        return _rejected(obj, raw, index, rules, exc)
    accepted = _new_accepted(Accepted)
    _set_transaction(accepted, txn)
    _set_index(accepted, index)
    return accepted


def _rejected(
    obj: Any, raw: bytes, index: int | None, rules: Rules, exc: CleaningError
) -> Accepted | Rejection:
    """A record the rules refused: an opt-in rule may still read it, else its rejection."""
    fixed = rewrite(obj, exc, rules) if rules else None
    if fixed is not None:  # an opt-in rule (schemas.rules) reads it; §1 checks the rest
        name, patched = fixed
        result = _one(patched, raw, index, rules - {name})
        if isinstance(result, Accepted):
            return result
        return Rejection(result.reason, result.detail, raw, readable_id(obj), index)
    return Rejection(exc.reason, exc.detail, raw, readable_id(obj), index)


def parse_message(value: bytes | None, rules: Rules = NO_RULES) -> list[Accepted | Rejection]:
    """One raw-topic message value → a result per record, in order (``rules``: the opt-in
    cleaning rules of ``schemas.rules`` that are turned on)."""
    if not value:
        return [Rejection("empty", "message value is empty", value or b"")]
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [Rejection("not_utf8", f"not UTF-8 at byte {exc.start}", value)]
    start = len(text) - len(text.lstrip(_WS))
    if text.startswith("[", start):
        return _parse_batch(text, value, rules)
    try:
        obj = _decode(value, text)
    except (ValueError, RecursionError) as exc:
        return [Rejection("not_json", _json_detail(exc), value)]
    return [_one(obj, value, None, rules)]


def _json_detail(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply"
    return str(exc)[:200]


def _parse_batch(text: str, value: bytes, rules: Rules) -> list[Accepted | Rejection]:
    """Decode the array once; only when something is rejected, find the exact raw slices."""
    try:
        items = _decode(value, text)
    except (ValueError, RecursionError) as exc:
        return [Rejection("not_json", _json_detail(exc), value)]
    results = [_one(obj, b"", index, rules) for index, obj in enumerate(items)]
    rejected = [index for index, r in enumerate(results) if type(r) is Rejection]
    if not rejected:
        return results
    pieces = _record_bytes(value, text, len(results), rejected[-1])
    for index in rejected:
        result = cast(Rejection, results[index])
        results[index] = Rejection(
            result.reason, result.detail, bytes(pieces[index]), result.transaction_id, index
        )
    return results


def _record_bytes(value: bytes, text: str, count: int, last: int) -> list[Any]:
    """The exact bytes of the records of a batch, at least up to index ``last``: one msgspec
    pass (``Raw`` slices of the message, no decoding) when msgspec read the message, else
    the stdlib walk of ``record_texts`` (the same slices, ~50x the time)."""
    if _clean is clean_record_fast:
        try:
            raws = _RAW_ITEMS.decode(value)
        except Exception:  # msgspec refused the message: the stdlib decoder read it
            pass
        else:
            if len(raws) == count:
                return raws
    pieces: list[Any] = []
    for piece in record_texts(text):  # walked up to the last rejection only
        pieces.append(piece.encode("utf-8"))
        if len(pieces) > last:
            break
    return pieces


def record_texts(text: str) -> Iterator[str]:
    """The exact text of each record of a batch (a JSON array already known to decode)."""
    pos = text.index("[") + 1
    while True:
        while text[pos] in _WS or text[pos] == ",":
            pos += 1
        if text[pos] == "]":
            return
        end = _DECODER.raw_decode(text, pos)[1]
        yield text[pos:end]
        pos = end


def split_batch(value: bytes) -> list[bytes] | None:
    """A batch message → the exact bytes of each of its records; None if it is not one."""
    try:
        text = value.decode("utf-8")
        items = _DECODER.decode(text)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(items, list):
        return None
    return [piece.encode("utf-8") for piece in record_texts(text)]
