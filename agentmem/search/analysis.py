"""Text analysis shared by every backend: text in, index terms out.

Both the stored messages and the query go through :func:`analyze`, so a term matches
whatever surface form it had: "Running", "runs" and "ran" of the same stem meet, case
does not matter, and contractions split into their word ("don't" -> "do"). Stop words
are dropped so that a query made only of them ("what is my") matches nothing instead of
everything.

A memory whose text opens with a speaker's label, as chat transcripts do
(``"Melanie: We went camping"``), also gets one *speaker term* per word of the label:
the word's term behind :data:`SPEAKER_MARK` (``"@melani"``). The label's words stay
text terms too. No word of a text can produce a term that starts with the mark, so a
speaker term never meets a text term; the ranking uses them to tell what a person said
from what was said to them (:mod:`agentmem.search.ranking`).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Container, Iterable
from functools import lru_cache

import snowballstemmer

__all__ = [
    "SPEAKER_MARK",
    "STOP_WORDS",
    "analyze",
    "index_words",
    "new_index_words",
    "speaker_terms",
    "term_counts",
]

# Words too common in conversation to tell memories apart. English only: other
# languages keep all their words, which costs ranking quality but never a match.
# Greetings and fillers are included: they open many turns and tell none apart.
STOP_WORDS: frozenset[str] = frozenset(
    """
    a about above after again against all am an and any are as at be because been
    before being below between both but by can could did do does doing down during
    each few for from further had has have having he her here hers herself him
    himself his how i if in into is it its itself just let me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own same
    she should so some such than that the their theirs them themselves then there
    these they this those through to too under until up very was we were what when
    where which while who whom why will with would you your yours yourself
    yourselves s t d ll m re ve y also yes yeah oh ok okay hey hi hello wow really
    well shall may might must
    """.split()  # noqa: SIM905 - a word list reads better as text
)

# Letters and digits, with inner apostrophes kept so contractions can be split below.
_APOSTROPHE = "['\u2019]"
_TOKEN = re.compile(rf"[^\W_]+(?:{_APOSTROPHE}[^\W_]+)*")
# The tail of a contraction or possessive carries no meaning of its own.
_CONTRACTION_TAIL = re.compile(rf"{_APOSTROPHE}(?:s|t|d|ll|m|re|ve)$")
_NEGATION = re.compile(rf"n{_APOSTROPHE}t$")

_stemmer = snowballstemmer.stemmer("english")

#: What a speaker term starts with; index terms of words never do.
SPEAKER_MARK = "@"
# A speaker's label opens the text: up to 40 characters, then a colon and a space. The
# blank before it is bounded too, so a text of nothing but blanks costs no backtracking.
_LABEL = re.compile(r"\s{0,40}([^:\n]{1,40}):\s")
# Its words: one to three, each capitalised, as names and roles are ("Ann", "Dr. Lee",
# "Mary-Jane O'Neil", "User"); "The plan was: go" opens with prose, not a label.
_LABEL_WORD = re.compile(rf"[^\W\d_]+(?:[-.]|{_APOSTROPHE})?(?:[^\W\d_]+[-.]?)*")


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    if word.isdigit():
        # Numbers are kept as they are: "2023" must not meet "202".
        return word
    stemmed: str = _stemmer.stemWord(word)
    return stemmed


def _words(text: str) -> list[str]:
    normalized = unicodedata.normalize("NFKC", text).casefold()
    words: list[str] = []
    for token in _TOKEN.findall(normalized):
        token = _NEGATION.sub("", token)
        token = _CONTRACTION_TAIL.sub("", token)
        words.extend(part for part in re.split(_APOSTROPHE, token) if part)
    return words


def analyze(text: str) -> list[str]:
    """The index terms of ``text``, in order, repeats kept."""
    return [_stem(word) for word in _words(text) if word not in STOP_WORDS]


def speaker_terms(terms: Iterable[str]) -> list[str]:
    """The speaker terms standing for index ``terms`` (as said by them)."""
    return [SPEAKER_MARK + term for term in terms]


def term_counts(text: str) -> Counter[str]:
    """How often each index term occurs in ``text``, with one speaker term for each
    word of a speaker's label opening it (see above)."""
    counts = Counter(analyze(text))
    label = _LABEL.match(text)
    if label:
        words = label.group(1).split()
        if len(words) <= 3 and all(
            word[0].isupper() and _LABEL_WORD.fullmatch(word) for word in words
        ):
            counts.update(dict.fromkeys(speaker_terms(analyze(label.group(1))), 1))
    return counts


def index_words(text: str) -> dict[str, str]:
    """Each index term of ``text`` with the first word that gave it, in order.

    Semantic search embeds that word to stand for the term: a stem such as "famili" is
    no word a model knows.
    """
    found: dict[str, str] = {}
    for word in _words(text):
        if word not in STOP_WORDS:
            found.setdefault(_stem(word), word)
    return found


def new_index_words(texts: Iterable[str], held: Container[str] = frozenset()) -> dict[str, str]:
    """The index terms of ``texts`` not in ``held``, each with the first word that gave it.

    What semantic search embeds when memories are stored: a vector for each term the
    user holds none of yet (:func:`index_words` over several texts).
    """
    found: dict[str, str] = {}
    for text in texts:
        for term, word in index_words(text).items():
            if term not in held:
                found.setdefault(term, word)
    return found
