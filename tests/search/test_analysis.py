"""Properties of text analysis: what becomes an index term."""

from __future__ import annotations

import pytest

from agentmem.search import STOP_WORDS, analyze, index_words, query_terms, term_counts


def test_other_forms_of_a_word_meet() -> None:
    assert analyze("She was painting landscapes") == analyze("paints landscape")
    assert analyze("Running") == analyze("runs")


def test_case_and_width_do_not_matter() -> None:
    # Full-width letters, as typed with some East Asian input methods.
    assert analyze("BLUE \uff23\uff41\uff46\uff45") == analyze("blue cafe")


def test_contractions_and_possessives_keep_their_word() -> None:
    assert analyze("Caroline's") == analyze("Caroline")
    assert analyze("don't") == analyze("do not") == []
    assert analyze("I've been hiking") == analyze("been hiking")
    assert analyze("Caroline\u2019s") == analyze("Caroline")


def test_numbers_are_kept_whole() -> None:
    assert analyze("in 2023, 4 years") == ["2023", "4", "year"]
    assert "202" not in analyze("2023")


def test_stop_words_alone_give_no_terms() -> None:
    assert query_terms("What is my ... and the?") == []
    assert analyze(" ".join(sorted(STOP_WORDS))) == []


def test_query_terms_are_distinct_in_order() -> None:
    assert query_terms("tea, cake and more tea") == ["tea", "cake"]


def test_term_counts_count_repeats() -> None:
    assert term_counts("dog dogs cat") == {"dog": 2, "cat": 1}


def test_index_words_name_each_term_by_its_first_word() -> None:
    assert index_words("Painted it? I paint, my Family's families paint.") == {
        "paint": "painted",
        "famili": "family",
    }
    assert list(index_words("the kids")) == query_terms("the kids")


@pytest.mark.parametrize(
    ("text", "speakers"),
    [
        ("Melanie: We went camping", {"@melani"}),
        ("  Jon:\tsee you", {"@jon"}),
        ("Dr. Ann Lee: hello", {"@dr", "@ann", "@lee"}),
        ("User: I like tea", {"@user"}),
        ("Zoë: ça va", {"@zoë"}),
    ],
)
def test_a_speakers_label_gives_speaker_terms(text: str, speakers: set[str]) -> None:
    counts = term_counts(text)
    assert {term for term in counts if term.startswith("@")} == speakers
    # The label's words stay text terms.
    assert set(analyze(text)) <= set(counts)


@pytest.mark.parametrize(
    "text",
    [
        "user: lower-case labels are prose",
        "The plan was: go early",
        "Caroline:no space after the colon",
        "A B C D: four words are no label",
        "R2D2: digits are no name",
        "We met Melanie: she paints",
        # The blank before a label is bounded: a text of blanks is read in one pass.
        " " * 100 + "Ann: hi",
    ],
)
def test_prose_before_a_colon_is_no_label(text: str) -> None:
    assert not any(term.startswith("@") for term in term_counts(text))


def test_no_word_gives_a_speaker_term() -> None:
    assert not any(term.startswith("@") for term in analyze("@melanie mail @ home"))
