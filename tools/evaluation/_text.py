"""Offline text handling for the evaluator: code fences, sentences, citations and content words.

No NLTK or spaCy data is needed: sentences are split by rules (abbreviations such as "e.g.", decimals,
inline code and URLs do not end a sentence) and words are stemmed with PyStemmer (Snowball English).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

import Stemmer
from evorag.tools.markdown_blocks import CodeBlock, fenced_segments

# ---------------------------------------------------------------------------------------------- code fences


def split_code_blocks(markdown: str) -> tuple[str, list[CodeBlock]]:
    """Separate fenced code blocks from prose.

    Returns the prose with every block replaced by a blank line (so sentences never run across a
    block) and the blocks in order. An unclosed fence runs to the end of the text, as CommonMark says.
    """
    prose: list[str] = []
    blocks: list[CodeBlock] = []
    for segment in fenced_segments(markdown.splitlines()):
        if isinstance(segment, CodeBlock):
            blocks.append(segment)
            prose.append("")
        else:
            prose.append(segment)
    return "\n".join(prose), blocks


# ---------------------------------------------------------------------------------------------- citations

CITATION_RE = re.compile(r"\[\^?(\d+(?:\s*(?:,|-|–)\s*\^?\d+)*)\]")


def citation_numbers(text: str) -> list[int]:
    """Citation numbers in order of first appearance: "[1]", "[2, 3]", "[4-6]", "[^7]" are understood."""
    numbers: list[int] = []
    for match in CITATION_RE.finditer(text):
        for part in re.split(r"\s*,\s*", match.group(1)):
            bounds = [int(x) for x in re.split(r"\s*[-–]\s*", part.replace("^", ""))]
            span = (
                range(bounds[0], bounds[-1] + 1)
                if len(bounds) == 2 and bounds[1] - bounds[0] < 50
                else bounds
            )
            for number in span:
                if number not in numbers:
                    numbers.append(number)
    return numbers


def strip_citations(text: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", CITATION_RE.sub("", text)).strip()


# ---------------------------------------------------------------------------------------------- sentences

# Words after which a period does not end a sentence (compared lowercased, without the final period).
# fmt: off
_ABBREVIATIONS = frozenset({
    "e.g", "i.e", "cf", "vs", "etc", "al", "approx", "ca", "fig", "figs", "eq", "no", "nos", "vol", "pp",
    "p", "sec", "ch", "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "inc", "ltd", "co", "corp",
    "dept", "est", "min", "max", "resp", "incl", "excl", "esp", "viz",
})
# fmt: on
# Only split after an abbreviation that can end a sentence when what follows clearly starts one.
_TERMINAL_ABBREVIATIONS = frozenset({"etc", "al", "inc", "ltd", "co", "corp"})
_SENTENCE_END = re.compile(
    r"[.!?]+"  # the terminator
    r"(?:[\"'”’)\]]|\[\^?\d+(?:\s*[,–-]\s*\^?\d+)*\])*"  # closing quotes/brackets and citation markers
    r"(?=\s+(?P<next>\S))"
)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
_URL = re.compile(r"\b(?:https?://|www\.)\S+")
_PLACEHOLDER = "\x00{}\x00"
# Technical sentences often start with a lowercase identifier: "json.dumps returns ...", "basicConfig ...".
_IDENTIFIER_START = re.compile(r"[a-z_][A-Za-z0-9]*(?:[._][A-Za-z_]|[A-Z]|\(|[0-9])")


def _protect(pattern: re.Pattern[str], text: str, store: list[str]) -> str:
    def keep(match: re.Match[str]) -> str:
        store.append(match.group(0))
        return _PLACEHOLDER.format(len(store) - 1)

    return pattern.sub(keep, text)


def _restore(text: str, store: list[str]) -> str:
    # Placeholders can nest (a URL inside inline code), so restore until none is left.
    while "\x00" in text:
        restored = re.sub(r"\x00(\d+)\x00", lambda m: store[int(m.group(1))], text)
        if restored == text:
            break
        text = restored
    return text


def _starts_sentence(char: str) -> bool:
    return char.isupper() or char.isdigit() or char in "\"'“‘([*_`\x00"


def _split_segment(segment: str) -> list[str]:
    """Split one paragraph or list item into sentences."""
    store: list[str] = []
    text = _protect(_URL, _protect(_INLINE_CODE, segment, store), store)
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        next_char = match.group("next")
        if not _starts_sentence(next_char) and not _IDENTIFIER_START.match(text, match.start("next")):
            continue
        if text[match.start()] == ".":
            word = re.search(r"([\w.]+)$", text[start : match.start()])
            token = word.group(1).lower() if word else ""
            if token in _ABBREVIATIONS and token not in _TERMINAL_ABBREVIATIONS:
                continue
            if len(token) == 1 and token.isalpha() and next_char.isupper():
                continue  # an initial, as in "J. Smith"
        sentences.append(text[start : match.end()])
        start = match.end()
    sentences.append(text[start:])
    return [s for s in (_restore(s, store).strip() for s in sentences) if s]


def split_sentences(prose: str, *, keep_headings: bool = False) -> list[str]:
    """Split Markdown prose (code fences already removed) into sentences.

    Paragraphs, list items and table rows are separate segments; headings are dropped unless
    ``keep_headings``. A citation marker written after the full stop ("... done. [2] Next") stays with
    the sentence it follows.
    """
    segments: list[str] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            segments.append(" ".join(current))
            current.clear()

    for line in prose.splitlines():
        stripped = line.strip()
        if not stripped or _TABLE_RULE.match(stripped):
            flush()
        elif _HEADING.match(line):
            flush()
            if keep_headings:
                segments.append(stripped.lstrip("#").strip())
        elif _LIST_ITEM.match(line) or stripped.startswith(("|", ">")):
            flush()
            current.append(_LIST_ITEM.sub("", stripped.lstrip(">").strip()).strip("|").replace("|", "; "))
        else:
            current.append(stripped)
    flush()

    sentences: list[str] = []
    for segment in segments:
        for sentence in _split_segment(segment):
            leading = re.match(r"^(?:\[\^?\d+(?:\s*[,–-]\s*\^?\d+)*\]\s*)+", sentence)
            if leading and sentences:
                # "Claim. [1] Next claim." -> the marker belongs to the claim before it.
                sentences[-1] += " " + leading.group(0).strip()
                sentence = sentence[leading.end() :].strip()
            if sentence:
                sentences.append(sentence)
    return sentences


def clean_markdown(text: str) -> str:
    """Plain text of a sentence: citations, emphasis, link targets and backticks removed."""
    text = strip_citations(text)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # [label](url) -> label
    text = re.sub(r"(\*\*|__|\*|`+)", "", text)
    return re.sub(r"\s+", " ", text).strip()


# ---------------------------------------------------------------------------------------------- words

_STOPWORDS = frozenset(
    """a about above after again against all also am an and any are aren't as at be because been before
    being below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't
    down during each few for from further had hadn't has hasn't have haven't having he her here hers herself
    him himself his how i if in into is isn't it it's its itself just let's me more most mustn't my myself
    neither never no nor not nothing none of off on once only or other ought our ours ourselves out over own
    same shan't she should shouldn't so some such than that that's the their theirs them themselves then
    there there's these they this those through to too under until up upon us very via was wasn't we were
    weren't what when where which while who whom why will with within without won't would wouldn't you
    your yours yourself yourselves i.e e.g etc may might must shall use used using one two also thus
    however therefore e g ie eg""".split()  # noqa: SIM905 -- easier to read
)
_NEGATION = re.compile(
    r"\b(?:not(?!\s+only\b)|no(?!\s+longer\b)|never|cannot|none|nothing|nobody|neither|nor|without)\b|n['’]t\b",
    re.IGNORECASE,
)
_NUMBER_WORDS = {
    "zero": "0", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
    "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "fifteen": "15", "twenty": "20", "thirty": "30",
    "forty": "40", "fifty": "50", "sixty": "60", "hundred": "100", "thousand": "1000",
}  # fmt: skip
_NUMBER = re.compile(r"(?<![A-Za-z_\d.])(\d{1,3}(?:,\d{3})+(?![\d])|\d+(?:\.\d+)*)(?![\d])")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_CAMEL = re.compile(r"[A-Z]+s?(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_CLAUSE_BREAK = re.compile(
    r"[;:,()]|\b(?:but|whereas|while|although|though|however|except|unless)\b", re.IGNORECASE
)

_local = threading.local()


def _stemmer() -> Stemmer.Stemmer:
    # PyStemmer objects are not thread-safe; one per thread keeps its word cache warm.
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer


def words(text: str) -> list[str]:
    """Lowercased words, identifiers split at dots, underscores and camelCase ("readTimeout" -> read, timeout)."""
    parts: list[str] = []
    for word in _WORD.findall(text.replace("_", " ")):
        if word.islower() or word.isupper() or len(word) < 4:
            parts.append(word.lower())
        else:
            parts.extend(piece.lower() for piece in _CAMEL.findall(word))
    return parts


def content_stems(text: str) -> frozenset[str]:
    """Stems of the words that carry meaning (stopwords, negations and one-letter words dropped)."""
    kept = [
        w for w in words(_URL.sub(" ", text)) if len(w) > 1 and w not in _STOPWORDS and w not in _NUMBER_WORDS
    ]
    return frozenset(_stemmer().stemWords(kept))


def numbers(text: str) -> frozenset[str]:
    """Numbers written in digits (thousands separators removed) or as common number words."""
    found = {match.replace(",", "") for match in _NUMBER.findall(text)}
    found.update(_NUMBER_WORDS[w] for w in re.findall(r"[a-z]+", text.lower()) if w in _NUMBER_WORDS)
    return frozenset(found)


def is_negated(text: str) -> bool:
    return _NEGATION.search(text) is not None


@dataclass(slots=True)
class TextUnit:
    """A sentence (claim or evidence) reduced to what the support test compares."""

    text: str
    stems: frozenset[str]
    numbers: frozenset[str]
    negated: bool
    clauses: list[tuple[frozenset[str], bool]] = field(default_factory=list)
    words: frozenset[str] = frozenset()  # lowercased, unstemmed: for antonyms by prefix

    @classmethod
    def of(cls, text: str) -> TextUnit:
        clauses = [
            (content_stems(part), is_negated(part))
            for part in _CLAUSE_BREAK.split(text)
            if part and part.strip()
        ]
        return cls(
            text=text,
            stems=content_stems(text),
            numbers=numbers(text),
            negated=is_negated(text),
            clauses=[c for c in clauses if c[0]],
            words=frozenset(w for w in words(text) if len(w) > 3),
        )


# Opposites that negation words do not catch ("enabled by default" vs "disabled by default").
_OPPOSITES = [
    ("enable", "disable"), ("true", "false"), ("required", "optional"), ("synchronous", "asynchronous"),
    ("sync", "async"), ("mutable", "immutable"), ("include", "exclude"), ("allow", "deny"),
    ("allowed", "forbidden"), ("accept", "reject"), ("minimum", "maximum"), ("increase", "decrease"),
    ("before", "after"), ("success", "failure"), ("succeed", "fail"), ("public", "private"),
    ("internal", "external"), ("lower", "upper"), ("ascending", "descending"), ("first", "last"),
    ("valid", "invalid"), ("secure", "insecure"), ("correct", "incorrect"), ("active", "inactive"),
    ("complete", "incomplete"), ("possible", "impossible"), ("blocking", "nonblocking"),
    ("local", "remote"), ("static", "dynamic"),
    ("implicit", "explicit"), ("inclusive", "exclusive"), ("open", "closed"), ("start", "stop"),
]  # fmt: skip
_NEGATING_PREFIXES = ("un", "non", "dis")


def _opposite_stems() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    stemmer = Stemmer.Stemmer("english")
    for left, right in _OPPOSITES:
        a, b = stemmer.stemWord(left), stemmer.stemWord(right)
        table.setdefault(a, set()).add(b)
        table.setdefault(b, set()).add(a)
    return {key: frozenset(value) for key, value in table.items()}


OPPOSITE_STEMS = _opposite_stems()


def opposite_pair(claim: TextUnit, evidence: TextUnit) -> tuple[str, str] | None:
    """A word of the claim whose opposite the evidence uses instead ("enabled" vs "disabled")."""
    claim_only, evidence_only = claim.stems - evidence.stems, evidence.stems - claim.stems
    for stem in claim_only:
        for opposite in OPPOSITE_STEMS.get(stem, ()):
            if opposite in evidence_only:
                return stem, opposite
    claim_words, evidence_words = claim.words - evidence.words, evidence.words - claim.words
    for word in claim_words:
        for prefix in _NEGATING_PREFIXES:
            if prefix + word in evidence_words:
                return word, prefix + word
            if word.startswith(prefix) and word[len(prefix) :] in evidence_words:
                return word, word[len(prefix) :]
    return None
