"""``txnpipe clv fit``: customer lifetime value from a CSV or from MySQL (CONTRACT §6).

With ``--transactions FILE`` the purchases come from a ``customer_id,date,amount`` CSV;
without it, from MySQL's ``transaction_versions`` as known at ``--as-of`` (default now:
per transaction its version with the greatest ``updated_at <= T``, as ``query --as-of``),
and the results are written to ``customer_clv``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from common.errors import ConfigError
from common.settings import Settings

if TYPE_CHECKING:
    from clv.pipeline import ClvResult

HELP = "customer lifetime value: segments and predictions"


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def _instant(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO-8601 date or date-time, got {text!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("fit",), help="fit the models and score every customer")
    parser.add_argument(
        "--transactions", type=Path, metavar="FILE", help="CSV customer_id,date,amount (else MySQL)"
    )
    parser.add_argument(
        "--calibration-end",
        type=_date,
        metavar="YYYY-MM-DD",
        help="last day used to fit (default: the last purchase day; MySQL: the day before --as-of)",
    )
    parser.add_argument(
        "--horizon-days",
        type=int,
        default=365,
        metavar="N",
        help="prediction horizon (default 365)",
    )
    parser.add_argument(
        "--discount-rate",
        type=float,
        default=0.01,
        metavar="MONTHLY",
        help="monthly discount rate (default 0.01)",
    )
    parser.add_argument(
        "--margin", type=float, default=1.0, help="profit margin in (0, 1] (default 1: revenue)"
    )
    parser.add_argument(
        "--holdout-end", type=_date, metavar="YYYY-MM-DD", help="end of the holdout check period"
    )
    parser.add_argument(
        "--as-of",
        type=_instant,
        metavar="ISO",
        help="MySQL: purchases as known at this instant (updated_at <= T, as query --as-of)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output (CONTRACT §6)")
    parser.add_argument(
        "--report", type=Path, metavar="HTML", help="also write a self-contained HTML report"
    )
    parser.add_argument(
        "--top", type=int, default=10, metavar="N", help="customers shown in the text output"
    )
    save = parser.add_mutually_exclusive_group()
    save.add_argument(
        "--save", dest="save", action="store_true", default=None, help="write customer_clv in MySQL"
    )
    save.add_argument(
        "--no-save", dest="save", action="store_false", help="do not write customer_clv"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from clv.pipeline import ClvOptions
    from clv.pipeline import run as run_pipeline

    if args.horizon_days < 0:
        raise ConfigError("--horizon-days must be >= 0")
    if args.transactions is not None and args.as_of is not None:
        raise ConfigError("--as-of applies to the MySQL source only (drop --transactions)")
    as_of = None
    if args.transactions is not None:
        from clv.data import read_purchases_csv

        purchases = read_purchases_csv(args.transactions)
        save = bool(args.save)
        if purchases.size == 0:
            raise ConfigError(f"transactions file={args.transactions} has no purchases")
        calibration_end = args.calibration_end or dt.date.fromordinal(int(purchases.day.max()))
    else:
        from clv.store import read_purchases

        as_of = args.as_of or dt.datetime.now(dt.UTC)
        purchases = read_purchases(settings, as_of)
        save = args.save is not False
        if purchases.size == 0:
            raise ConfigError(f"no counted purchases known at as_of={as_of.isoformat()}")
        calibration_end = args.calibration_end or (
            as_of.astimezone(dt.UTC).date() - dt.timedelta(days=1)
        )
    holdout_end = args.holdout_end
    if holdout_end is None and as_of is not None:
        holdout_end = as_of.astimezone(dt.UTC).date()
    try:
        options = ClvOptions(
            calibration_end=calibration_end,
            horizon_days=args.horizon_days,
            monthly_discount_rate=args.discount_rate,
            margin=args.margin,
            holdout_end=holdout_end if holdout_end and holdout_end > calibration_end else None,
            as_of=as_of,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    result = run_pipeline(purchases, options)
    if save:
        from clv.store import write_results

        write_results(settings, result)
    if args.report is not None:
        from clv.report import write_report

        write_report(result, args.report)
    if args.json:
        json.dump(result.contract_json(), sys.stdout, separators=(",", ":"), allow_nan=False)
        sys.stdout.write("\n")
    else:
        print(render(result, args.top))
    return 0


def render(result: ClvResult, top: int) -> str:
    """Parameters, segments and the most valuable customers, for people."""
    b, g = result.bgnbd.params, result.gamma_gamma.params
    o = result.options
    lines = [
        f"model {result.model_version}: {result.summary.size} customers, "
        f"calibration to {o.calibration_end}, horizon {o.horizon_days} days, "
        f"monthly discount {o.monthly_discount_rate}, margin {o.margin}",
        f"BG/NBD       r={b.r:.4f} alpha={b.alpha:.4f} a={b.a:.4f} b={b.b:.4f} "
        f"LL={result.bgnbd.log_likelihood:.2f}",
        f"Gamma-Gamma  p={g.p:.4f} q={g.q:.4f} v={g.v:.4f} "
        f"LL={result.gamma_gamma.log_likelihood:.2f}",
        "",
        f"{'segment':<16} {'customers':>9} {'total CLV':>14} {'mean CLV':>10}",
    ]
    from clv.report import segment_table

    for name, count, total, mean in segment_table(result):
        lines.append(f"{name:<16} {count:>9} {total:>14,.2f} {mean:>10,.2f}")
    s = result.summary
    order = sorted(range(s.size), key=lambda i: (-result.clv[i], s.customer_ids[i]))[: max(top, 0)]
    if order:
        lines += [
            "",
            f"{'customer':<20} {'segment':<16} {'x':>4} {'P(alive)':>8} "
            f"{'E[purchases]':>12} {'CLV':>12}",
        ]
    for i in order:
        lines.append(
            f"{s.customer_ids[i]:<20} {result.segment[i]:<16} {int(s.frequency[i]):>4} "
            f"{result.p_alive[i]:>8.3f} {result.expected_purchases[i]:>12.3f} "
            f"{result.clv[i]:>12,.2f}"
        )
    return "\n".join(lines)
