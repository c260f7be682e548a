"""The reply's text as whole words for a streamed TTS connection (`voice.word_feed`)."""

from __future__ import annotations

from voice.chunker import SentenceChunker
from voice.word_feed import Piece, WordFeed


def feed_deltas(deltas: list[str]) -> list[list[Piece]]:
    """Each delta written and cut as the pipeline does; the pieces each would send."""
    feed, chunker, out = WordFeed(), SentenceChunker(min_clause_chars=30), []
    for delta in deltas:
        feed.write(delta)
        for chunk in chunker.push(delta):
            feed.cut(chunk)
        out.append(feed.take())
    for chunk in chunker.flush():
        feed.cut(chunk)
    out.append(feed.take(final=True))
    return out


def test_a_word_waits_for_the_space_after_it() -> None:
    assert feed_deltas(["The phar", "macy closes", " at six"]) == [
        [Piece("The ", False)],
        [Piece("pharmacy ", False)],
        [Piece("closes at ", False)],
        [Piece("six", True)],
    ]


def test_a_sentence_end_is_a_boundary_with_the_words_that_end_it() -> None:
    # "open." is only known to end a sentence when the space after it comes.
    assert feed_deltas(["It is open.", " See you", " soon."]) == [
        [Piece("It is ", False)],
        [Piece("open.", True), Piece(" See ", False)],
        [Piece("you ", False)],
        [Piece("soon.", True)],
    ]


def test_every_written_word_is_sent_once_in_order() -> None:
    deltas = ["Dr. Patel sees you at 3.30 on Monday, ", "then again\non Friday", "... ok?"]
    pieces = [p for batch in feed_deltas(deltas) for p in batch]
    sent = " ".join(" ".join(p.text.split()) for p in pieces if p.text.strip())
    assert sent == " ".join("".join(deltas).split())
    # No cut after "Dr." or inside "3.30"; a short ellipsis is no clause end.
    assert [p.text for p in pieces if p.boundary] == [
        "Dr. Patel sees you at 3.30 on Monday,",
        "then again",
        "ok?",
    ]


def test_a_boundary_already_sent_is_an_empty_piece() -> None:
    feed = WordFeed()
    feed.write("word " * 3)
    assert feed.take() == [Piece("word word word ", False)]
    feed.cut("word word")
    assert feed.take() == [Piece("", True)]
