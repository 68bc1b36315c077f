"""Properties of the shared ranking, seen through the in-memory backend.

Every backend ranks with ``agentmem.search.ranking``; these tests pin what that ranking
promises (not benchmark figures): stemming, stop words, newest-first ties, neighbour
context, the handling of common terms, and filters.
"""

from __future__ import annotations

import math

import pytest

from agentmem import InMemoryMemoryService, InvalidArgumentError
from agentmem.search import RankingParameters
from tests.helpers import text_message, texts


async def _service(
    *sessions: list[str], ranking: RankingParameters | None = None
) -> InMemoryMemoryService:
    service = InMemoryMemoryService(ranking=ranking)
    for number, session in enumerate(sessions):
        await service.add_memory(
            "u", [text_message(text) for text in session], session_id=f"s{number}"
        )
    return service


async def test_stemming_matches_other_forms() -> None:
    service = await _service(["We went hiking in the mountains", "I bake bread"])
    assert texts(await service.search_memory("u", "hikes mountain")) == [
        "We went hiking in the mountains"
    ]


async def test_stop_words_never_match_alone() -> None:
    service = await _service(["What is it that you did there?", "the and of it"])
    assert await service.search_memory("u", "what did you do there and it") == []


async def test_equal_scores_put_the_newest_first() -> None:
    service = await _service(["green tea"], ["green tea"], ["green tea"])
    hits = await service.search_memory_hits("u", "tea")
    assert [hit.session_id for hit in hits] == ["s2", "s1", "s0"]
    assert len({hit.score for hit in hits}) == 1


async def test_a_neighbour_sharing_query_terms_lifts_a_memory() -> None:
    # Two equal answers; only the first follows the question that names the topic.
    service = await _service(
        ["What did you paint last weekend?", "Anna: a sunrise over the lake"],
        ["Anna: a sunrise over the lake"],
    )
    hits = await service.search_memory_hits("u", "What did Anna paint? A sunrise?")
    answers = [
        (hit.session_id, hit.score)
        for hit in hits
        if hit.message.get_text_content() == "Anna: a sunrise over the lake"
    ]
    assert [session for session, _ in answers] == ["s0", "s1"]
    assert answers[0][1] > answers[1][1]


async def test_a_memory_sharing_no_term_is_never_returned_for_its_neighbours() -> None:
    service = await _service(["What did you paint last weekend?", "A sunrise over the lake"])
    assert texts(await service.search_memory("u", "paint")) == ["What did you paint last weekend?"]


async def test_context_does_not_cross_sessions() -> None:
    service = await _service(["What did you paint?"], ["Anna: a sunrise"], ["Anna: a sunrise"])
    hits = await service.search_memory_hits("u", "Anna paint sunrise")
    answers = [hit for hit in hits if hit.message.get_text_content() == "Anna: a sunrise"]
    assert answers[0].score == pytest.approx(answers[1].score)


async def test_context_reaches_two_turns_and_weakens_with_distance() -> None:
    service = await _service(
        ["we talk about kayaks", "a red one"],
        ["we talk about kayaks", "some filler words", "a red one"],
        ["we talk about kayaks", "some filler words", "more filler words", "a red one"],
    )
    hits = await service.search_memory_hits("u", "red kayak")
    answers = [hit.session_id for hit in hits if hit.message.get_text_content() == "a red one"]
    scores = [hit.score for hit in hits if hit.message.get_text_content() == "a red one"]
    assert answers == ["s0", "s1", "s2"]
    assert scores[0] > scores[1] > scores[2]


async def test_context_can_be_switched_off() -> None:
    ranking = RankingParameters(context_weights=())
    service = await _service(["What did you paint?", "a sunrise"], ["a sunrise"], ranking=ranking)
    hits = await service.search_memory_hits("u", "paint sunrise")
    sunrise = [hit.score for hit in hits if hit.message.get_text_content() == "a sunrise"]
    assert sunrise[0] == pytest.approx(sunrise[1])


async def test_rarer_terms_weigh_more() -> None:
    service = await _service(*[["hot tea"]] * 5, ["tea with lemon"], ["lemon cake"])
    found = texts(await service.search_memory("u", "lemon tea"))
    assert found[:2] == ["tea with lemon", "lemon cake"]


async def test_common_terms_score_but_do_not_drown_rare_ones() -> None:
    # "tea" is held by far more than a quarter of 400 memories: it is common.
    filler = [f"tea break number {i}" for i in range(400)]
    story = ["Sam: we drank tea", "Sam: then went sailing", "Sam: tea again"]
    service = await _service(filler, story)
    found = texts(await service.search_memory("u", "Sam sailing tea", {"top_k": 3}))
    assert found[0] == "Sam: then went sailing"
    # Memories holding only common terms are still found next to a selective one.
    assert set(found[1:]) == {"Sam: we drank tea", "Sam: tea again"}


async def test_common_terms_alone_still_match() -> None:
    # One memory per session: no context, so all scores tie and the newest come first.
    service = await _service(*([f"tea break number {i}"] for i in range(400)))
    found = await service.search_memory("u", "tea", {"top_k": 5})
    assert texts(found) == [f"tea break number {i}" for i in range(399, 394, -1)]


async def test_filters_apply_before_the_best_are_taken() -> None:
    # The one matching memory of session s0 is the oldest of 600: pruning the many
    # candidates must not lose it.
    service = await _service(["tea alone"], [f"tea and tea number {i}" for i in range(600)])
    found = await service.search_memory("u", "tea", {"top_k": 1, "session_id": "s0"})
    assert texts(found) == ["tea alone"]


async def test_top_k_limits_and_orders_large_result_sets() -> None:
    service = await _service([f"note {i} about tea" for i in range(1000)])
    hits = await service.search_memory_hits("u", "tea note", {"top_k": 7})
    assert len(hits) == 7
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)


async def test_a_message_json_cannot_carry_is_refused_and_not_indexed() -> None:
    service = InMemoryMemoryService()
    with pytest.raises(InvalidArgumentError, match="tags"):
        await service.add_memory("u", [text_message("tea with friends", tags={"a", "b"})])
    assert await service.search_memory("u", "tea") == []
    assert await service.list_memory("u") == []


@pytest.mark.parametrize("delta", [0.5, 0.0])
async def test_scores_are_bm25l_and_plain_bm25_without_the_shift(delta: float) -> None:
    # Two one-memory sessions, so no context: "tea" is held once by a memory of 3 terms,
    # among 2 memories of 2 terms on average.
    ranking = RankingParameters(delta=delta)
    service = await _service(["tea cake scone"], ["coffee"], ranking=ranking)
    [hit] = await service.search_memory_hits("u", "tea")
    idf = math.log(1 + (2 - 1 + 0.5) / (1 + 0.5))
    value = 1 / (1 - 0.75 + 0.75 * 3 / 2) + delta
    assert hit.score == pytest.approx(idf * value * 2.2 / (value + 1.2))


async def test_a_long_memory_holding_every_query_term_beats_a_short_partial_one() -> None:
    # Plain BM25's length normalisation ranks the one-word memory first; BM25L's shift
    # makes holding both terms count for more than being short.
    sessions = [
        ["tea"],
        ["we drank tea with cake at the old harbour cafe yesterday"],
        ["cake"],
        ["bread"],
        ["soup"],
        ["rice"],
    ]
    default = await _service(*sessions)
    plain = await _service(*sessions, ranking=RankingParameters(delta=0.0))
    long_one = "we drank tea with cake at the old harbour cafe yesterday"
    assert texts(await default.search_memory("u", "tea harbour")) == [long_one, "tea"]
    assert texts(await plain.search_memory("u", "tea harbour")) == ["tea", long_one]


async def test_what_a_named_speaker_said_ranks_above_what_was_said_to_them() -> None:
    # Equal words; only the order of the names differs.
    service = await _service(
        ["Anna: Thanks, Ben! I painted the lake"], ["Ben: Thanks, Anna! I painted the lake"]
    )
    hits = await service.search_memory_hits("u", "What did Anna paint?", explain=True)
    assert [hit.message.get_text_content() for hit in hits] == [
        "Anna: Thanks, Ben! I painted the lake",
        "Ben: Thanks, Anna! I painted the lake",
    ]
    said, told = hits
    assert said.score == pytest.approx(told.score * (1 + RankingParameters().speaker_boost))
    assert said.explanation is not None and told.explanation is not None
    assert said.explanation.speaker == pytest.approx(said.score - told.score)
    assert told.explanation.speaker == 0.0
    off = await _service(
        ["Anna: Thanks, Ben! I painted the lake"],
        ["Ben: Thanks, Anna! I painted the lake"],
        ranking=RankingParameters(speaker_boost=0.0),
    )
    assert len({hit.score for hit in await off.search_memory_hits("u", "Anna paint")}) == 1

