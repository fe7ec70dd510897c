"""How far the token estimate (a quarter of the characters) is from real tokenizers.

``python -m bench.token_estimate`` counts a few hundred texts found offline on this machine with
the estimate Waypost uses when no tokenizer fits a model (``waypost.metering.estimate``) and with
OpenAI's ``o200k_base`` and ``cl100k_base`` (``waypost.metering.tokenizer``), and prints the
error per kind of text as a Markdown table (docs/usage.md shows it). The texts:

* **prose**: paragraphs of this repository's docs (``README.md``, ``docs/``);
* **docstrings**: docstrings of the Python standard library's modules, classes and functions;
* **code**: functions of the standard library, as source;
* **json**: tool arguments and tool schemas: every JSON object in ``tests/fixtures/`` (recorded
  provider payloads), compact;
* **messages**: German, Russian, Japanese and Chinese messages of the system's gettext catalogs
  (``/usr/share/locale``), when the machine has them.

Each kind is sampled to at most ``--per-kind`` texts (default 200) with a fixed seed, so runs on
one machine give the same figures. The error of one text is ``estimate / tokens - 1``: positive
when the estimate counts more than the tokenizer.
"""

from __future__ import annotations

import argparse
import ast
import gettext
import json
import random
import statistics
import sys
import sysconfig
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import toktok

from waypost.metering.estimate import estimate_tokens

ROOT = Path(__file__).resolve().parent.parent
ENCODINGS = ("o200k_base", "cl100k_base")
LANGUAGES = {"de": "German", "ru": "Russian", "ja": "Japanese", "zh_CN": "Chinese"}


def prose() -> Iterator[str]:
    for path in sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]):
        for paragraph in path.read_text().split("\n\n"):
            if len(paragraph.strip()) >= 80:
                yield paragraph.strip()


@cache
def _stdlib_trees() -> list[tuple[str, ast.Module]]:
    trees = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        try:
            source = path.read_text()
            trees.append((source, ast.parse(source)))
        except (SyntaxError, ValueError):  # UnicodeDecodeError is a ValueError
            continue
    return trees


def docstrings() -> Iterator[str]:
    for _, tree in _stdlib_trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= 80:
                    yield doc


def code() -> Iterator[str]:
    for source, tree in _stdlib_trees():
        lines = source.splitlines(keepends=True)  # get_source_segment splits the file per call
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
                segment = "".join(lines[node.lineno - 1 : node.end_lineno])
                if 200 <= len(segment) <= 8000:
                    yield segment


def _objects(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for inner in value.values():
            yield from _objects(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _objects(inner)


def json_texts() -> Iterator[str]:
    seen: set[str] = set()
    for path in sorted((ROOT / "tests" / "fixtures").rglob("*.json")):
        try:
            document = json.loads(path.read_text())
        except ValueError:
            continue
        for obj in _objects(document):
            text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
            if 20 <= len(text) <= 8000 and text not in seen:
                seen.add(text)
                yield text


def translations(language: str) -> Callable[[], Iterator[str]]:
    def messages() -> Iterator[str]:
        for catalog in sorted(Path("/usr/share/locale", language, "LC_MESSAGES").glob("*.mo")):
            try:
                with catalog.open("rb") as handle:
                    translated = gettext.GNUTranslations(handle)._catalog  # type: ignore[attr-defined]
            except (OSError, ValueError):  # not a catalog Python reads (UnicodeDecodeError is one)
                continue
            for text in translated.values():
                if isinstance(text, str) and len(text) >= 40:
                    yield text

    return messages


KINDS: dict[str, Callable[[], Iterator[str]]] = {
    "prose (English)": prose,
    "docstrings": docstrings,
    "code": code,
    "json": json_texts,
    **{f"messages ({name})": translations(code) for code, name in LANGUAGES.items()},
}


def sample(texts: Iterator[str], size: int, seed: int) -> list[str]:
    unique = sorted(set(texts))
    return unique if len(unique) <= size else random.Random(seed).sample(unique, size)


def errors(texts: list[str], encoding: str) -> tuple[list[float], float]:
    """Each text's relative error, and the error over all texts together."""
    tokens = toktok.batch_count(texts, encoding, threads=1)
    estimates = [estimate_tokens([text]) for text in texts]
    per_text = [e / t - 1 for e, t in zip(estimates, tokens, strict=True) if t]
    return per_text, sum(estimates) / sum(tokens) - 1


def percent(value: float) -> str:
    return f"{value * 100:+.0f} %"


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(per_kind: int, seed: int) -> str:
    rows = [
        "| texts | n | vs | bias (mean error) | all together | median \\|error\\| | 90 % of texts within |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    everything: list[str] = []
    for kind, source in KINDS.items():
        texts = sample(source(), per_kind, seed)
        if not texts:
            rows.append(f"| {kind} | 0 | | (none on this machine) | | | |")
            continue
        everything += texts
        rows += _rows(kind, texts)
    rows += _rows("**all**", everything)
    return "\n".join(rows)


def _rows(kind: str, texts: list[str]) -> list[str]:
    out = []
    for encoding in ENCODINGS:
        per_text, together = errors(texts, encoding)
        absolute = [abs(e) for e in per_text]
        out.append(
            f"| {kind} | {len(texts)} | {encoding} | {percent(statistics.fmean(per_text))} | {percent(together)} "
            f"| {statistics.median(absolute) * 100:.0f} % | ±{quantile(absolute, 0.9) * 100:.0f} % |"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-kind", type=int, default=200, help="texts sampled per kind (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(report(args.per_kind, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
