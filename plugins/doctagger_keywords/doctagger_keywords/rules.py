"""Keyword rules and how they match a text: Paperless-ngx's five matching algorithms.

- ``any``: any of the words (or "quoted phrases") occurs;
- ``all``: every one of them occurs, in any order;
- ``exact``: the whole match string occurs as a phrase (white space may vary);
- ``regex``: the regular expression matches (Python ``re`` syntax);
- ``fuzzy``: a run of words is at least ``threshold`` similar to the match string
  (difflib's ratio, punctuation ignored): catches OCR slips and typos.

Words and phrases match whole words: ``bill`` does not match ``billion``. Matching ignores
case unless the rule says ``case_sensitive``. A rule scores 1.0 when it matches (``fuzzy``:
the similarity it found) and 0.0 when it does not.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from doctagger.errors import InvalidInputError

ALGORITHMS = ("any", "all", "exact", "regex", "fuzzy")
DEFAULT_THRESHOLD = 0.85
_TERMS = re.compile(r'"([^"]+)"|(\S+)')
_PUNCTUATION = re.compile(r"[^\w\s]")


def split_terms(match: str) -> list[str]:
    """``'invoice "tax bill"'`` -> ``['invoice', 'tax bill']`` (quotes make a phrase)."""
    return [" ".join((quoted or word).split()) for quoted, word in _TERMS.findall(match)
            if (quoted or word).strip()]


def _phrase_pattern(phrase: str) -> str:
    """A whole-word pattern for a phrase; any run of white space matches a space."""
    body = r"\s+".join(re.escape(word) for word in phrase.split())
    return rf"(?<!\w){body}(?!\w)"


@dataclass(frozen=True)
class Rule:
    """One label's rule. ``Rule.from_dict({"match": "invoice bill", "algorithm": "any"})``."""

    match: str
    algorithm: str = "any"
    case_sensitive: bool = False
    threshold: float = DEFAULT_THRESHOLD  # fuzzy only
    _compiled: list = field(default_factory=list, init=False, compare=False, repr=False)

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise InvalidInputError(f"unknown matching algorithm '{self.algorithm}'; use one "
                                    f"of {', '.join(ALGORITHMS)}")
        if not isinstance(self.match, str) or not self.match.strip():
            raise InvalidInputError("a keyword rule needs a non-empty match string")
        if not 0.5 <= float(self.threshold) <= 1.0:
            raise InvalidInputError(f"fuzzy threshold {self.threshold} is out of range; use a "
                                    "similarity from 0.5 to 1.0 (default 0.85)")
        flags = 0 if self.case_sensitive else re.IGNORECASE
        if self.algorithm == "regex":
            try:
                patterns = [re.compile(self.match, flags)]
            except re.error as exc:
                raise InvalidInputError(f"bad regular expression {self.match!r}: {exc}") from None
        elif self.algorithm == "exact":
            patterns = [re.compile(_phrase_pattern(self.match), flags)]
        elif self.algorithm in ("any", "all"):
            patterns = [re.compile(_phrase_pattern(t), flags) for t in split_terms(self.match)]
            if not patterns:
                raise InvalidInputError("a keyword rule needs at least one word")
        else:
            patterns = []
        self._compiled.extend(patterns)

    # -- (de)serialisation ------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data) -> "Rule":
        """From the JSON form; a bare string means ``{"match": it, "algorithm": "any"}``."""
        if isinstance(data, str):
            return cls(match=data)
        if not isinstance(data, dict) or "match" not in data:
            raise InvalidInputError(f"a keyword rule is a match string or an object with "
                                    f"'match' (and 'algorithm'), not {data!r}")
        unknown = set(data) - {"match", "algorithm", "case_sensitive", "threshold"}
        if unknown:
            raise InvalidInputError(f"unknown keys in keyword rule: {', '.join(sorted(unknown))}")
        return cls(match=data["match"], algorithm=data.get("algorithm", "any"),
                   case_sensitive=bool(data.get("case_sensitive", False)),
                   threshold=float(data.get("threshold", DEFAULT_THRESHOLD)))

    def to_dict(self) -> dict:
        out = {"match": self.match, "algorithm": self.algorithm,
               "case_sensitive": self.case_sensitive}
        if self.algorithm == "fuzzy":
            out["threshold"] = self.threshold
        return out

    def describe(self) -> str:
        """``any of: invoice, bill, "amount due"`` — for listings."""
        case = " (case-sensitive)" if self.case_sensitive else ""
        if self.algorithm in ("any", "all"):
            terms = ", ".join(f'"{t}"' if " " in t else t for t in split_terms(self.match))
            return f"{self.algorithm} of: {terms}{case}"
        if self.algorithm == "fuzzy":
            return f'fuzzy (>= {self.threshold:g}): "{self.match}"{case}'
        if self.algorithm == "exact":
            return f'exact: "{self.match}"{case}'
        return f"regex: {self.match}{case}"

    # -- matching -----------------------------------------------------------------------------
    def find(self, text: str) -> tuple[float, list[str]]:
        """``(score, what matched)``: score 0.0 when the rule does not match."""
        if self.algorithm == "fuzzy":
            ratio, window = self._fuzzy(text)
            return (ratio, [window]) if ratio >= self.threshold else (0.0, [])
        found = []
        for pattern in self._compiled:
            hit = pattern.search(text)
            if hit:
                found.append(hit.group(0))
            elif self.algorithm == "all":
                return 0.0, []
        return (1.0, found) if found else (0.0, [])

    def score(self, text: str) -> float:
        return self.find(text)[0]

    def _fuzzy(self, text: str) -> tuple[float, str]:
        """Best similarity between the match string and a run of words of about its length.

        Windows of n-1, n and n+1 words are compared with difflib's ratio; a length bound
        and ``quick_ratio`` skip most windows cheaply."""
        fold = (lambda s: s) if self.case_sensitive else str.casefold
        target = " ".join(fold(_PUNCTUATION.sub(" ", self.match)).split())
        words = fold(_PUNCTUATION.sub(" ", text)).split()
        if not target or not words:
            return 0.0, ""
        n = len(target.split())
        matcher = SequenceMatcher(None, autojunk=False)
        matcher.set_seq2(target)
        best, best_window = 0.0, ""
        length = len(target)
        for size in sorted({max(1, n - 1), n, n + 1}):
            for i in range(0, max(1, len(words) - size + 1)):
                window = " ".join(words[i:i + size])
                # ratio <= 2 * min(a, b) / (a + b): skip windows too short or too long
                if 2 * min(len(window), length) / (len(window) + length) < max(best, self.threshold):
                    continue
                matcher.set_seq1(window)
                if matcher.quick_ratio() < max(best, self.threshold):
                    continue
                ratio = matcher.ratio()
                if ratio > best:
                    best, best_window = ratio, window
                    if best == 1.0:
                        return best, best_window
        return best, best_window


def parse_rules(data: dict, labels: list[str] | None = None) -> dict[str, Rule]:
    """``{label: rule-json}`` -> ``{label: Rule}``, refusing labels the task lacks."""
    if not isinstance(data, dict):
        raise InvalidInputError("keyword rules are a JSON object: {\"label\": {\"match\": ..., "
                                "\"algorithm\": ...}}")
    rules = {}
    for label, rule in data.items():
        if labels is not None and label not in labels:
            raise InvalidInputError(f"'{label}' is not a label of the task (labels: "
                                    f"{', '.join(labels)})")
        rules[label] = Rule.from_dict(rule)
    return rules
