"""The docs name only commands that exist: every ``txnpipe …`` line in README.md,
ARCHITECTURE.md and ``docs/**/*.md`` parses with the real CLI parser (subcommand, flags,
choices, value types), every ``make <target>`` is a Makefile target, and every repository
path and relative link points at something that is there. New pages are picked up by the
glob; a failure names the file, the line and the flag.

Placeholders are read as a usage line reads them: ``[...]`` is optional (and included),
``a|b`` means both (each alternative is parsed), an upper-case word (``N``, ``FILE``, ``T``)
is a value of the type its flag expects, ``...``/``…`` stands for more. Inline code spans
count when they hold a command; there a missing required argument is allowed, since
"`txnpipe replay`" in prose names the command rather than spelling out a whole line.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from txnpipe.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(
    {ROOT / "README.md", ROOT / "ARCHITECTURE.md", *ROOT.glob("docs/**/*.md")},
    key=lambda p: p.relative_to(ROOT).as_posix(),
)
PLACEHOLDER = re.compile(r"^(?:[A-Z][A-Z0-9_-]*|<[^>]+>)$")
ELLIPSIS = {"...", "…"}
# values tried, in order, for a placeholder: the first its flag's type and choices accept
SAMPLES = ("1", "0.5", "2026-01-01", "2026-01-01T00:00:00Z", "x")
SEPARATORS = {"|", "||", "&&", ";", "&"}
FENCE = re.compile(r"^\s*(```|~~~)")
SPAN = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
REPO_PATH = re.compile(r"^[A-Za-z_][\w.-]*(?:/[\w.-]+)+/?$")


@dataclass(frozen=True)
class Command:
    page: str
    line: int
    argv: tuple[str, ...]  # after the program name (``txnpipe`` or ``make``)
    inline: bool  # from a code span in prose, not a code block

    def where(self) -> str:
        return f"{self.page}:{self.line}"


def _code(page: Path) -> list[tuple[int, str, bool]]:
    """(line, text, inline) of every code-block line and every inline code span."""
    found: list[tuple[int, str, bool]] = []
    prose: list[tuple[int, str]] = []
    fenced = False
    pending = ""
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            prose.append((number, line))
            continue
        if line.rstrip().endswith("\\"):  # shell line continuation
            pending += line.rstrip()[:-1] + " "
            continue
        found.append((number, pending + line, False))
        pending = ""
    # spans may wrap inside a paragraph (not across a blank line)
    text = "\n".join(line for _, line in prose)
    numbers = [n for n, _ in prose]
    for match in SPAN.finditer(text):
        span = match.group(2)
        if "\n\n" not in span:
            line = numbers[text.count("\n", 0, match.start())]
            found.append((line, span.replace("\\|", "|").replace("\n", " ").strip(), True))
    return found


def _words(text: str, inline: bool) -> list[str]:
    try:
        words = shlex.split(text, comments=not inline)
    except ValueError:  # an unbalanced quote, e.g. a SQL string going on to the next line
        words = text.split("#")[0].split()
    out: list[str] = []
    for word in words:
        if len(word) > 1 and word.endswith(";"):
            out += [word[:-1], ";"]
        else:
            out.append(word)
    return out


def _rel(page: Path) -> str:
    return page.relative_to(ROOT).as_posix() if page.is_relative_to(ROOT) else page.name


def commands(page: Path, program: str) -> list[Command]:
    """Every invocation of ``program`` on the page (after env assignments, in any pipe stage)."""
    rel = _rel(page)
    found: list[Command] = []
    for line, text, inline in _code(page):
        words = _words(text, inline)
        if words and words[0] == "$":
            words = words[1:]
        segment: list[str] = []
        for word in [*words, ";"]:
            if word not in SEPARATORS:
                segment.append(word)
                continue
            while segment and re.match(r"^[A-Z_][A-Z0-9_]*=", segment[0]):
                segment.pop(0)
            args = tuple(w for w in segment[1:] if w not in ELLIPSIS)
            output = bool(args) and args[0].endswith(":")  # "txnpipe run: …" is what it printed
            if args and Path(segment[0]).name == program and not output:  # `txnpipe …` alone: none
                found.append(Command(rel, line, args, inline))
            segment = []
    return found


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("txnpipe has no subcommands")


def _variants(argv: tuple[str, ...]) -> list[list[str]]:
    """Optional brackets dropped, ``...`` removed, ``a|b|c`` spread over as many variants."""
    words = [w.strip("[]") for w in argv]
    words = [w for w in words if w and w not in ELLIPSIS]
    options = [w.split("|") if "|" in w else [w] for w in words]
    count = max((len(o) for o in options), default=1)
    return [[o[i % len(o)] for o in options] for i in range(count)]


def _accepts(action: argparse.Action, value: str) -> bool:
    try:
        converted = action.type(value) if callable(action.type) else value
    except (ValueError, TypeError, argparse.ArgumentTypeError):
        return False
    return action.choices is None or converted in action.choices or value in action.choices


def _sample(action: argparse.Action, placeholder: str) -> str:
    pool = [str(c) for c in action.choices] if action.choices else list(SAMPLES)
    return next((v for v in pool if _accepts(action, v)), placeholder)


def _fill(words: list[str], sub: argparse.ArgumentParser) -> list[str]:
    """Replace placeholders by a value the flag (or positional) they stand for accepts."""
    words = [_fill_inline(w, sub) for w in words]
    positionals = [a for a in sub._actions if not a.option_strings]
    out: list[str] = []
    taken = 0
    for i, word in enumerate(words):
        previous = sub._option_string_actions.get(words[i - 1].split("=")[0]) if i else None
        takes_value = previous is not None and previous.nargs != 0 and "=" not in words[i - 1]
        if not PLACEHOLDER.match(word):
            if not word.startswith("-") and not takes_value:
                taken += 1
            out.append(word)
            continue
        if previous is not None and previous.nargs == 0:
            continue  # ``--from-beginning|--from-time T``: T belongs to the other alternative
        action = previous if takes_value else None
        if action is None and taken < len(positionals):
            action = positionals[taken]
            taken += 1
        if action is None:
            out.append(word)  # left for argparse to reject
            continue
        out.append(_sample(action, word))
    return out


def _fill_inline(word: str, sub: argparse.ArgumentParser) -> str:
    """``--flag=N``: the placeholder after ``=`` becomes a value of the flag's type."""
    flag, eq, value = word.partition("=")
    action = sub._option_string_actions.get(flag) if flag.startswith("-") else None
    if eq and action is not None and PLACEHOLDER.match(value):
        return f"{flag}={_sample(action, value)}"
    return word


def txnpipe_problems(command: Command, parser: argparse.ArgumentParser) -> list[str]:
    subs = _subparsers(parser)
    name, *rest = command.argv
    shown = "txnpipe " + " ".join(command.argv)
    if name.startswith("-"):
        return []  # ``txnpipe --help`` / ``--version``: no subcommand to check
    if name not in subs:
        return [f"{command.where()}: `{shown}`: no subcommand {name!r} (have: {', '.join(subs)})"]
    sub = subs[name]
    words = [name]
    nested = next((dict(a.choices) for a in sub._actions
                   if isinstance(a, argparse._SubParsersAction)), {})  # fmt: skip
    if rest and rest[0] in nested:  # ``txnpipe dlq list --reason R``: the flags are list's
        words, sub, rest = [name, rest[0]], nested[rest[0]], rest[1:]
        name = " ".join(words)
    problems = []
    for word in _variants(tuple(rest))[0] + [w for v in _variants(tuple(rest))[1:] for w in v]:
        flag = word.split("=")[0]
        if flag.startswith("--") and flag not in sub._option_string_actions:
            problems.append(f"{command.where()}: `{shown}`: `txnpipe {name}` has no flag {flag}")
    for variant in _variants(tuple(rest)):
        argv = [*words, *_fill(variant, sub)]
        err, out = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                parser.parse_args(argv)
        except SystemExit as exc:
            message = err.getvalue().strip()
            required = "required" in message and "unrecognized" not in message
            if exc.code not in (0, None) and not (command.inline and required):
                problems.append(f"{command.where()}: `{shown}` as {argv}: {message}")
    return sorted(set(problems))


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z0-9_][\w.-]*)\s*:(?!=)", text, re.M))


def make_problems(command: Command, targets: set[str]) -> list[str]:
    named = [w for w in command.argv if not w.startswith("-") and "=" not in w]
    return [
        f"{command.where()}: `make {' '.join(command.argv)}`: the Makefile has no target {t!r}"
        for t in named
        if t not in targets
    ]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    fenced = False
    for line in page.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and (m := re.match(r"^#{1,6}\s+(.*)$", line)):
            slug = _slug(m.group(1))
            seen[slug] = seen.get(slug, -1) + 1
            if seen[slug]:
                seen[f"{slug}-{seen[slug]}"] = 0
    return set(seen)


def reference_problems(page: Path, root: Path = ROOT) -> list[str]:
    """Relative links (file and #anchor) and repository paths in code spans must exist."""
    rel = _rel(page)
    problems = []
    top = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    for number, line in enumerate(page.read_text().splitlines(), 1):
        for target in LINK.findall(line):
            if re.match(r"^[a-z]+:", target):
                continue  # http:, mailto:
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve() if file else page
            if not path.is_relative_to(root):
                continue  # outside the repository (../shared): not ours to check
            if not path.exists():
                problems.append(f"{rel}:{number}: link {target!r}: no file {file}")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                problems.append(f"{rel}:{number}: link {target!r}: no heading #{anchor}")
    for number, text, _ in _code(page):
        for word in _words(text, inline=True):
            if REPO_PATH.match(word) and word.split("/")[0] in top and not (root / word).exists():
                problems.append(f"{rel}:{number}: `{word}` does not exist")
    return problems


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    built = build_parser()
    for sub in (built, *_subparsers(built).values()):
        sub.allow_abbrev = False  # `--web` must not pass for `--web-port`
    return built


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_txnpipe_commands_exist(page: Path, parser: argparse.ArgumentParser) -> None:
    problems = [p for c in commands(page, "txnpipe") for p in txnpipe_problems(c, parser)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_make_targets_exist(page: Path) -> None:
    targets = make_targets()
    problems = [p for c in commands(page, "make") for p in make_problems(c, targets)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_links_and_paths_exist(page: Path) -> None:
    problems = reference_problems(page)
    assert not problems, "\n".join(problems)


def test_the_docs_are_read() -> None:
    """The scan finds what the README is known to hold, so an empty scan cannot pass."""
    found = {c.argv[:1] for c in commands(ROOT / "README.md", "txnpipe")}
    assert {("run",), ("replay",), ("status",), ("query",)} <= found
    assert ("test",) in {c.argv[:1] for c in commands(ROOT / "README.md", "make")}
    assert any(p.parent.name == "docs" for p in PAGES)


CASES = {
    "unknown-flag": ("txnpipe run --workers 2 --sinkz 3", "`txnpipe run` has no flag --sinkz"),
    "unknown-subcommand": ("txnpipe reconcil --json", "no subcommand 'reconcil'"),
    "bad-choice": ("txnpipe replay --from-beginning --target redis|sql", "invalid choice: 'sql'"),
    "abbreviation": ("txnpipe run --web 1", "`txnpipe run` has no flag --web"),
    "bad-value": ("txnpipe query top-customers --limit many", "invalid int value"),
    "make": ("make tests", "the Makefile has no target 'tests'"),
    "anchor": ("see [ops](#no-such-heading)", "no heading #no-such-heading"),
    "path": ("see `benchmarks/bench_nope.py`", "`benchmarks/bench_nope.py` does not exist"),
}


@pytest.mark.parametrize(("line", "expected"), CASES.values(), ids=CASES.keys())
def test_a_wrong_command_is_reported_with_file_and_line(
    tmp_path: Path, parser: argparse.ArgumentParser, line: str, expected: str
) -> None:
    (tmp_path / "benchmarks").mkdir()
    page = tmp_path / "probe.md"
    block = line if line.startswith("see ") else f"```sh\n# a comment\n{line}\n```"
    page.write_text(f"# Probe\n\n{block}\n")
    problems = [
        *(p for c in commands(page, "txnpipe") for p in txnpipe_problems(c, parser)),
        *(p for c in commands(page, "make") for p in make_problems(c, make_targets())),
        *reference_problems(page, root=tmp_path),
    ]
    line_number = 3 if line.startswith("see ") else 5
    assert any(expected in p and f"probe.md:{line_number}:" in p for p in problems), problems


@pytest.mark.parametrize(
    "line",
    [
        "txnpipe replay --from-beginning|--from-time T [--target redis|mysql|all]",
        "txnpipe query categories|top-customers|monthly [--source redis|mysql] [--limit N]",
        "txnpipe clv fit --transactions FILE --calibration-end D --as-of T ...",
        "txnpipe run --workers=N --duration=S",
        "TXNPIPE_NAMESPACE=x txnpipe status --json | jq .   # a comment --not-a-flag",
    ],
    ids=["alternatives", "positional-choices", "placeholders", "flag=value", "env-pipe-comment"],
)
def test_usage_placeholders_are_understood(
    tmp_path: Path, parser: argparse.ArgumentParser, line: str
) -> None:
    page = tmp_path / "probe.md"
    page.write_text(f"# Probe\n\n```sh\n{line}\n```\n")
    found = commands(page, "txnpipe")
    problems = [p for c in found for p in txnpipe_problems(c, parser)]
    assert found and not problems, problems
