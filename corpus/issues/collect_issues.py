#!/usr/bin/env python3
"""Build ``converter_issues.csv`` from the raw issue records in ``raw_issues.jsonl``.

Each raw record is one public GitHub issue of ``onnx/tensorflow-onnx`` (tf2onnx) or of
``pytorch/pytorch`` (``torch.onnx`` exporter issues only), selected by the keyword queries
listed in ``README.md``.  A record holds facts only: URL, repository, number, title, state, a
date and where it was read (``date_source``), and the result of the keyword cause rule below:

* ``date_source = "description"``: the date of the issue's opening post (the creation date);
* ``date_source = "earliest comment"``: the date of the earliest comment that was read, because
  the opening post's date was not available.  It is an *upper bound* of the creation date and
  can be months or years late (``README.md`` lists the 19 provably late rows);
* ``description_keywords``: per cause, the keywords of the rule that matched the issue's thread
  text (lowercased, deduplicated, sorted; the text itself is not shipped);
* ``cause`` and ``cause_matched``: the rule's result and what decided it (the field, ``title``
  or ``description``, and the matched keywords; ``null`` for ``other``).

This script re-validates the raw records, deduplicates them by URL, recomputes every issue's
``cause`` from its title and ``description_keywords`` with the rule below, fails if that differs
from the stored ``cause`` / ``cause_matched``, and writes the CSV that
``opseq hypotheses evolution`` reads.  It is deterministic: the same raw file gives the same
CSV byte for byte.

Usage::

    python corpus/issues/collect_issues.py                 # writes converter_issues.csv
    python corpus/issues/collect_issues.py --stats         # also prints the counts (markdown)
    python corpus/issues/collect_issues.py --repository onnx/tensorflow-onnx -o /tmp/tf.csv
    python corpus/issues/collect_issues.py --description-only -o /tmp/desc.csv
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RAW = HERE / "raw_issues.jsonl"
OUT = HERE / "converter_issues.csv"

REPOSITORIES = ("onnx/tensorflow-onnx", "pytorch/pytorch")
URL_RE = re.compile(r"^https://github\.com/(onnx/tensorflow-onnx|pytorch/pytorch)/issues/(\d+)$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATE_SOURCES = ("description", "earliest comment")
STATES = ("closed", "open")
FIELDS = (
    "url",
    "repository",
    "number",
    "title",
    "created_at",
    "date_source",
    "state",
    "cause",
    "cause_matched",
    "description_keywords",
)

# ---------------------------------------------------------------------------------------------
# The cause rule.
#
# Inputs: the issue title (lowercased) and, for the thread text, the keywords of the
# patterns below that matched it (``description_keywords``, computed once by
# ``match_keywords``).  The four *specific* causes are tried in this order, first against the
# title alone, then against the description keywords:
#
#     incompatibility > type > shape > wrong-result
#
# and the first cause with a match decides.  Only if none of them matches anywhere is the
# generic ``crash`` pattern tried (title, then description keywords), and only if that fails
# too the cause is ``other``.  Trying the title first keeps a stray word deep in a pasted
# traceback from overriding what the reporter said the issue is about.  Patterns marked
# title-only are too common in thread text (e.g. "support" in any helpful reply) to be used
# there.
# ---------------------------------------------------------------------------------------------

SPECIFIC_CAUSES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "incompatibility",  # an op / feature / opset the converter cannot handle
        (
            r"not supported",
            r"unsupported",
            r"not (yet )?implemented",
            r"symbolic[\w.]* does not exist",
            r"couldn'?t export",
            r"could not export",
            r"can'?t export",
            r"cannot export",
            r"can not export",
            r"not registered",
            r"no op registered",
            r"no schema registered",
            r"no onnx function",
            r"missing (symbolic|op|operator)",
            r"no symbolic",
            r"unsupportedoperatorerror",
            r"keyerror: '",
            r"is not a registered",
            r"purposely graph breaks",
            r"not in scope",
            r"unrecognized (namespace|attribute)",
            r"only [\w ]*(is |are )?supported",
        ),
        (r"\bsupport", r"\bopset", r"\bversion \d+", r"\bop(erator)? request"),
    ),
    (
        "type",  # dtype / element-type problems, casts
        (
            r"dtype",
            r"data ?type",
            r"type mismatch",
            r"\bint(8|16|32|64)\b",
            r"\buint8\b",
            r"float(16|32|64)",
            r"\bfp16\b",
            r"bfloat16",
            r"\bdouble\b",
            r"\bcast\b",
            r"tensor\(bool\)",
            r"\bbool(ean)?\b",
            r"\bcomplex\b",
            r"type parameter",
            r"typeinferenceerror",
            r"elem_type",
            r"tensor\((int|float|double|bool)",
            r"attribute data type",
            r"mismatched attribute type",
            r"quint8",
        ),
        (),
    ),
    (
        "shape",  # shape inference, dynamic shapes/axes, rank
        (
            r"shape",
            r"dynamic[ _]?ax",
            r"dynamic (batch|shape|input|dim|sequence|time)",
            r"\brank\b",
            r"\bdimension",
            r"reshape",
            r"batch[ _]size",
            r"sequence length",
            r"infer shape",
        ),
        (),
    ),
    (
        "wrong-result",  # runs, but computes something else
        (
            r"different (result|output|data)",
            r"results? (are |is )?(pretty |big )?different",
            r"\bdiffer",
            r"(?<!version )mismatch",
            r"incorrect(?! type)",
            r"\bwrong\b(?! wire)",
            r"not match\b",
            r"not (get )?the same (result|output)",
            r"large error",
            r"not (properly|correctly)",
            r"doesn'?t match",
            r"does not match",
            r"inconsisten",
            r"accuracy",
            r"parity",
            r"numerically",
            r"same for all",
            r"\bnan\b",
            r"not equal to tolerance",
            r"not equivalent",
            r"fails silently",
        ),
        (),
    ),
)

CRASH_PATTERNS = (
    r"segfault",
    r"segmentation fault",
    r"sigsegv",
    r"sigfpe",
    r"crash",
    r"core dumped",
    r"internal assert",
    r"exit code",
    r"fatal",
    r"exception",
    r"error",
    r"\bfail",
    r"traceback",
    r"not created",
    r"stuck",
)

CAUSES = (*(c for c, _, _ in SPECIFIC_CAUSES), "crash", "other")
KEYWORD_CAUSES = CAUSES[:-1]  # the causes that have description keywords
DESCRIPTION_PATTERNS: dict[str, tuple[str, ...]] = {
    **{cause: patterns for cause, patterns, _ in SPECIFIC_CAUSES},
    "crash": CRASH_PATTERNS,
}
TITLE_PATTERNS: dict[str, tuple[str, ...]] = {
    **{cause: patterns + title_only for cause, patterns, title_only in SPECIFIC_CAUSES},
    "crash": CRASH_PATTERNS,
}


def _matches(patterns: tuple[str, ...], text: str) -> list[str]:
    """The substrings of ``text`` the patterns match: lowercased, deduplicated, sorted."""
    text = text.lower()
    return sorted({m.group(0) for p in patterns for m in re.finditer(p, text)})


def match_keywords(text: str) -> dict[str, list[str]]:
    """``description_keywords`` of a thread text: per cause, the rule's keywords it contains.

    Causes without a match are left out; ``other`` has no keywords.
    """
    found = {cause: _matches(DESCRIPTION_PATTERNS[cause], text) for cause in KEYWORD_CAUSES}
    return {cause: kws for cause, kws in found.items() if kws}


def decide(title: str, description_keywords: dict[str, list[str]]) -> tuple[str, dict | None]:
    """The cause of one issue and what decided it, by the keyword rule described above.

    Returns ``(cause, cause_matched)`` with ``cause_matched = {"field": "title" or
    "description", "keywords": [...]}``, or ``None`` when the cause is ``other``.
    """
    for cause, _, _ in SPECIFIC_CAUSES:
        if kws := _matches(TITLE_PATTERNS[cause], title):
            return cause, {"field": "title", "keywords": kws}
    for cause, _, _ in SPECIFIC_CAUSES:
        if kws := description_keywords.get(cause):
            return cause, {"field": "description", "keywords": list(kws)}
    if kws := _matches(CRASH_PATTERNS, title):
        return "crash", {"field": "title", "keywords": kws}
    if kws := description_keywords.get("crash"):
        return "crash", {"field": "description", "keywords": list(kws)}
    return "other", None


def classify(title: str, description_keywords: dict[str, list[str]]) -> str:
    """The cause of one issue from its title and ``description_keywords``."""
    return decide(title, description_keywords)[0]


def _check_keywords(where: str, keywords: object) -> None:
    """``description_keywords`` must be keywords the rule's description patterns can match."""
    if not isinstance(keywords, dict) or not set(keywords) <= set(KEYWORD_CAUSES):
        raise SystemExit(f"{where}: description_keywords must map causes {KEYWORD_CAUSES}")
    for cause, kws in keywords.items():
        if (
            not isinstance(kws, list)
            or not kws
            or kws != sorted(set(kws))
            or any(not isinstance(k, str) or k != k.lower() for k in kws)
        ):
            raise SystemExit(
                f"{where}: description_keywords[{cause!r}] must be a non-empty sorted list "
                "of distinct lowercase strings"
            )
        for k in kws:
            if not any(re.fullmatch(p, k) for p in DESCRIPTION_PATTERNS[cause]):
                raise SystemExit(f"{where}: {k!r} is not a keyword of cause {cause!r}")


def load_raw(path: Path) -> list[dict]:
    """Read, validate and deduplicate the raw records (a description date beats a comment date).

    Fails if a record's recomputed cause (or what decided it) differs from the stored one.
    """
    by_url: dict[str, dict] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        rec = json.loads(line)
        if tuple(rec) != FIELDS:
            raise SystemExit(f"{where}: fields must be exactly {FIELDS}, got {tuple(rec)}")
        m = URL_RE.match(rec["url"])
        if not m:
            raise SystemExit(f"{where}: not an issue URL of the two repositories: {rec['url']}")
        if rec["repository"] != m.group(1) or int(rec["number"]) != int(m.group(2)):
            raise SystemExit(f"{where}: repository/number do not match the URL")
        if not DATE_RE.match(rec["created_at"]) or rec["date_source"] not in DATE_SOURCES:
            raise SystemExit(f"{where}: bad date or date_source")
        if rec["state"] not in STATES:
            raise SystemExit(f"{where}: bad state {rec['state']!r}")
        _check_keywords(where, rec["description_keywords"])
        cause, matched = decide(rec["title"], rec["description_keywords"])
        if (cause, matched) != (rec["cause"], rec["cause_matched"]):
            raise SystemExit(
                f"{where}: {rec['url']}: the rule gives cause {cause!r} ({matched}), but the "
                f"record stores {rec['cause']!r} ({rec['cause_matched']})"
            )
        old = by_url.get(rec["url"])
        if old is None or (
            old["date_source"] != "description"
            and (rec["date_source"] == "description" or rec["created_at"] < old["created_at"])
        ):
            by_url[rec["url"]] = rec
    return list(by_url.values())


def build_rows(records: list[dict]) -> list[dict]:
    rows = [
        {
            "created_at": r["created_at"],
            "cause": classify(r["title"], r["description_keywords"]),
            "repository": r["repository"],
            "number": int(r["number"]),
            "url": r["url"],
            "title": " ".join(r["title"].split()),  # one line; the csv module quotes the rest
            "date_source": r["date_source"],
        }
        for r in records
    ]
    rows.sort(key=lambda r: (r["created_at"], r["repository"], r["number"]))
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    fields = ["created_at", "date_source", "cause", "repository", "number", "url", "title"]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def stats(rows: list[dict]) -> str:
    def table(title: str, counter: collections.Counter, keys) -> list[str]:
        out = [f"**{title}**", "", "| | count |", "|---|---:|"]
        out += [f"| {k} | {counter.get(k, 0)} |" for k in keys]
        return [*out, f"| total | {sum(counter.values())} |", ""]

    repo = collections.Counter(r["repository"] for r in rows)
    cause = collections.Counter(r["cause"] for r in rows)
    src = collections.Counter(r["date_source"] for r in rows)
    years = sorted({r["created_at"][:4] for r in rows})
    lines = table("per repository", repo, REPOSITORIES)
    lines += table("per cause", cause, CAUSES)
    lines += table("per date source", src, DATE_SOURCES)
    lines += [
        "**per year and repository**",
        "",
        "| year | " + " | ".join(REPOSITORIES) + " | total |",
        "|---|" + "---:|" * (len(REPOSITORIES) + 1),
    ]
    for y in years:
        cs = [
            sum(1 for r in rows if r["created_at"][:4] == y and r["repository"] == rp)
            for rp in REPOSITORIES
        ]
        lines.append(f"| {y} | " + " | ".join(map(str, cs)) + f" | {sum(cs)} |")
    lines += [
        "",
        "**cause per repository**",
        "",
        "| cause | " + " | ".join(REPOSITORIES) + " |",
        "|---|" + "---:|" * len(REPOSITORIES),
    ]
    for c in CAUSES:
        cs = [
            sum(1 for r in rows if r["cause"] == c and r["repository"] == rp) for rp in REPOSITORIES
        ]
        lines.append(f"| {c} | " + " | ".join(map(str, cs)) + " |")
    lines += [
        "",
        f"date range: {rows[0]['created_at']} .. {rows[-1]['created_at']}" if rows else "",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--raw", type=Path, default=RAW, help="raw JSONL (default: %(default)s)")
    ap.add_argument("-o", "--output", type=Path, default=OUT, help="CSV (default: %(default)s)")
    ap.add_argument("--repository", choices=REPOSITORIES, help="keep only this repository")
    ap.add_argument(
        "--description-only",
        action="store_true",
        help="keep only issues whose creation date was read off the opening post",
    )
    ap.add_argument("--stats", action="store_true", help="print counts (markdown) to stdout")
    args = ap.parse_args(argv)

    rows = build_rows(load_raw(args.raw))
    if args.repository:
        rows = [r for r in rows if r["repository"] == args.repository]
    if args.description_only:
        rows = [r for r in rows if r["date_source"] == "description"]
    write_csv(rows, args.output)
    print(f"wrote {len(rows)} issues to {args.output}", file=sys.stderr)
    if args.stats:
        sys.stdout.write(stats(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
