"""Tests for chainvoice.SentenceSplitter."""

# Full-width CJK punctuation is what these tests are about.
# ruff: noqa: RUF001

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chainvoice import ConfigurationError, SentenceSplitter


def split(text: str, deltas: list[str] | None = None, /, **options: Any) -> list[str]:
    """All pieces of ``text`` (pushed as ``deltas``, or at once), then the flushed rest."""
    splitter = SentenceSplitter(**options)
    pieces: list[str] = []
    for delta in [text] if deltas is None else deltas:
        pieces += splitter.push(delta)
    return pieces + splitter.flush()


def spoken(text: str, /, **options: Any) -> list[str]:
    """The pieces as the chain speaks them: stripped, whitespace-only ones skipped."""
    return [p.strip() for p in split(text, **options) if p.strip()]


def chunks(text: str, cuts: list[int]) -> list[str]:
    bounds = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


EAGER = {"first_min_chars": 0, "min_chars": 0}

# -- properties -----------------------------------------------------------------------------

FRAGMENTS = [
    *"abcXYZ 019",
    *".!?…。！？．,;:—-*#>\"')」（\n\t",
    " ",
    "  ",
    "\n\n",
    "\u3000",
    "Dr.",
    " e.g.",
    "U.S.",
    "3.14",
    "a.m.",
    "etc.",
    "...",
    "1. ",
    "- ",
    "## ",
    "**",
    "你好",
    "日本語",
    "한국어",
    "Hello",
    " there",
    "example.com",
    "J. R. ",
]
texts = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join),
    st.text(max_size=200),
)
limits = st.one_of(st.none(), st.integers(1, 60))


@st.composite
def options(draw: st.DrawFn) -> dict[str, int | None]:
    max_chars = draw(limits)
    first_max = draw(limits)
    top = max_chars if max_chars is not None else 60
    first_top = min(top, first_max) if first_max is not None else top
    return {
        "max_chars": max_chars,
        "first_max_chars": first_max,
        "min_chars": draw(st.integers(0, top)),
        "first_min_chars": draw(st.integers(0, first_top)),
    }


@settings(max_examples=300, deadline=None)
@given(text=texts, cuts=st.lists(st.integers(0, 10_000), max_size=30), opts=options())
def test_pieces_join_to_the_text_for_any_deltas(
    text: str, cuts: list[int], opts: dict[str, int | None]
) -> None:
    pieces = split(text, chunks(text, cuts), **opts)
    assert "".join(pieces) == text
    assert all(pieces)


@settings(max_examples=300, deadline=None)
@given(text=texts, cuts=st.lists(st.integers(0, 10_000), max_size=30), opts=options())
@example(  # a run of line breaks that arrives in parts, past the length limit
    text="et \u2014\u2026'##\u2028\n\n>",
    cuts=[],
    opts={"max_chars": 5, "first_max_chars": 2, "min_chars": 5, "first_min_chars": 2},
)
def test_pieces_do_not_depend_on_the_delta_boundaries(
    text: str, cuts: list[int], opts: dict[str, int | None]
) -> None:
    assert split(text, chunks(text, cuts), **opts) == split(text, **opts)
    assert split(text, list(text), **opts) == split(text, **opts)


@settings(max_examples=150, deadline=None)
@given(text=texts, opts=options())
def test_released_pieces_are_never_taken_back(text: str, opts: dict[str, int | None]) -> None:
    # What a prefix of the text released is released, unchanged, by the whole text.
    whole = split(text, **opts)
    splitter = SentenceSplitter(**opts)  # type: ignore[arg-type]
    released: list[str] = []
    for ch in text:
        released += splitter.push(ch)
        assert released == whole[: len(released)]


words = st.text(alphabet="abcdefghij", min_size=1, max_size=8)
sentence_text = st.lists(
    st.tuples(words, st.sampled_from([" ", " ", " ", ", ", ". ", "! ", "; "])), max_size=80
).map(lambda parts: "".join(w + sep for w, sep in parts))


@st.composite
def roomy_options(draw: st.DrawFn) -> dict[str, int | None]:
    # Limits that leave room for a word of up to 8 letters above the minimum.
    max_chars = draw(st.one_of(st.none(), st.integers(20, 60)))
    first_max = draw(st.one_of(st.none(), st.integers(20, 60)))
    top = max_chars if max_chars is not None else 60
    first_top = min(top, first_max) if first_max is not None else top
    return {
        "max_chars": max_chars,
        "first_max_chars": first_max,
        "min_chars": draw(st.integers(0, top - 10)),
        "first_min_chars": draw(st.integers(0, first_top - 10)),
    }


@settings(max_examples=200, deadline=None)
@given(text=sentence_text, opts=roomy_options(), cuts=st.lists(st.integers(0, 10_000), max_size=20))
def test_pieces_keep_to_the_lengths(
    text: str, opts: dict[str, int | None], cuts: list[int]
) -> None:
    # Every released piece is at least the minimum (no line breaks here), at most the
    # limit, and ends between words.
    splitter = SentenceSplitter(**opts)  # type: ignore[arg-type]
    pieces: list[str] = []
    for delta in chunks(text, cuts):
        pieces += splitter.push(delta)
    for n, piece in enumerate(pieces):
        length = len(piece.lstrip())
        assert length >= (opts["min_chars"] if n else opts["first_min_chars"])  # type: ignore[operator]
        limit = opts["max_chars"] if n else _first_limit(opts)
        if limit is not None:
            assert length <= limit + 1  # a sentence may end one terminator past the limit
    cut = 0
    for piece in pieces:  # never inside a word
        cut += len(piece)
        assert not (text[cut - 1].isalnum() and text[cut].isalnum())


def _first_limit(opts: dict[str, int | None]) -> int | None:
    values = [v for v in (opts["max_chars"], opts["first_max_chars"]) if v is not None]
    return min(values) if values else None


# -- whitespace, words and paragraphs -------------------------------------------------------


def test_words_are_not_glued_across_deltas() -> None:
    pieces = split("He arrived. She left.", ["He ", "arrived", ".", " She", " left."], **EAGER)
    assert pieces == ["He arrived.", " She left."]


def test_leading_whitespace_and_paragraph_breaks_are_kept() -> None:
    text = "  First paragraph.\n\nSecond paragraph,\nstill second.\n\n\nThird."
    pieces = split(text, list(text))
    assert "".join(pieces) == text
    assert pieces == [
        "  First paragraph.",
        "\n\nSecond paragraph,\nstill second.",
        "\n\n\nThird.",
    ]


def test_a_blank_line_cuts_even_a_short_piece() -> None:
    assert spoken("Hi!\n\nSo here is what I found today.") == [
        "Hi!",
        "So here is what I found today.",
    ]
    assert spoken("Tea\n\nCoffee\n\nMilk") == ["Tea", "Coffee", "Milk"]


def test_whitespace_only_and_punctuation_only_text_is_not_cut_off() -> None:
    assert split("\n\n  \n\n", **EAGER) == ["\n\n  \n\n"]
    assert split("...\n\n!!!\n\nOk.", **EAGER) == ["...\n\n!!!\n\nOk."]
    assert split("", **EAGER) == []


def test_short_final_pieces_are_kept() -> None:
    text = "Here is a longer first sentence for you. Ok."
    assert split(text) == ["Here is a longer first sentence for you.", " Ok."]
    assert split("ok") == ["ok"]
    assert split("Bye.", list("Bye.")) == ["Bye."]


# -- where a sentence ends ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Dr. Watson and Mr. Holmes met Mrs. Hudson and Prof. Moriarty.",
        "Bring fruit, e.g. apples, i.e. something sweet.",
        "We bought apples, pears, etc. and then went home.",
        "The value of pi is 3.14 and e is 2.71828 roughly.",
        "He moved to the U.S. Army base and then the U.K. office.",
        "We met at 10 a.m. and parted at 5 p.m. yesterday.",
        "I was thinking... maybe we could go… tomorrow instead.",
        "Write to support@example.com or visit www.example.com today.",
        "The Lord of the Rings by J. R. R. Tolkien is long.",
        "See No. 5 and Fig. 3 on pp. 10 of Vol. 2 for details.",
        "She holds a Ph.D. from MIT and lives in St. Louis.",
        'He asked "why?" and she said "because."',
        "Version 2.0.1 fixed it, see https://example.com/a.b?c=d&e=f.g for the notes.",
    ],
)
def test_no_cut_inside_a_sentence(text: str) -> None:
    assert split(text, **EAGER) == [text]
    assert split(text, list(text), **EAGER) == [text]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("It costs 3.50. Then we pay.", ["It costs 3.50.", "Then we pay."]),
        (
            "Bring apples, pears, etc. The rest is here.",
            ["Bring apples, pears, etc.", "The rest is here."],
        ),
        ("We close at 5 p.m. Come early.", ["We close at 5 p.m.", "Come early."]),
        ("Really?! Yes. Wow!!! Ok.", ["Really?!", "Yes.", "Wow!!!", "Ok."]),
        ("Wait... What was that?", ["Wait...", "What was that?"]),
        ("No. I disagree.", ["No.", "I disagree."]),
        ("Visit example.com. It helps.", ["Visit example.com.", "It helps."]),
        ("It happened in 1999. 20 people came.", ["It happened in 1999.", "20 people came."]),
        ("Done.\nNext line.", ["Done.", "Next line."]),
        ("It is done. then we go.", ["It is done.", "then we go."]),
    ],
)
def test_cuts_at_sentence_ends(text: str, expected: list[str]) -> None:
    assert spoken(text, **EAGER) == expected


def test_closing_quotes_and_brackets_stay_with_the_sentence() -> None:
    text = "He said \"hi.\" Then (as planned.) he left. 'Fine.' **Done.** Ok."
    assert split(text, list(text), **EAGER) == [
        'He said "hi."',
        " Then (as planned.) he left.",
        " 'Fine.'",
        " **Done.**",
        " Ok.",
    ]


def test_a_question_inside_a_quote_then_lowercase_is_not_an_end() -> None:
    assert spoken('"Why?" she asked. "Because," he said.', **EAGER) == [
        '"Why?" she asked.',
        '"Because," he said.',
    ]


def test_extra_abbreviations() -> None:
    text = "Wir kaufen Obst, bzw. Gemüse. Dann gehen wir."
    assert spoken(text, **EAGER) == ["Wir kaufen Obst, bzw.", "Gemüse.", "Dann gehen wir."]
    assert spoken(text, abbreviations=["bzw."], **EAGER) == [
        "Wir kaufen Obst, bzw. Gemüse.",
        "Dann gehen wir.",
    ]


# -- CJK ------------------------------------------------------------------------------------


def test_cjk_sentence_punctuation_needs_no_space() -> None:
    text = "你好。我是你的助手！有什么可以帮你？好的．谢谢。"
    expected = ["你好。", "我是你的助手！", "有什么可以帮你？", "好的．", "谢谢。"]
    assert split(text, **EAGER) == expected
    assert split(text, list(text), **EAGER) == expected


def test_cjk_closing_brackets_stay_with_the_sentence() -> None:
    text = "他说：「你好。」然后走了。（真的！）好。"
    assert split(text, list(text), **EAGER) == [
        "他说：「你好。」",
        "然后走了。",
        "（真的！）",
        "好。",
    ]


def test_cjk_decimals_and_half_width_punctuation() -> None:
    assert split("价格是３．１４元。好。", **EAGER) == ["价格是３．１４元。", "好。"]
    assert split("你好!我是助手.再见", **EAGER) == ["你好!", "我是助手.", "再见"]
    assert split("こんにちは。元気ですか？はい。", **EAGER) == [
        "こんにちは。",
        "元気ですか？",
        "はい。",
    ]


def test_cjk_characters_count_double_towards_lengths() -> None:
    # 9 Han characters and a full stop: 19 > 15, so the first sentence is long enough.
    assert split("今天天气很好我们走。好的。", first_min_chars=15) == [
        "今天天气很好我们走。",
        "好的。",
    ]
    assert split("今天天气很好我们走。好的。", first_min_chars=20) == ["今天天气很好我们走。好的。"]


# -- Markdown -------------------------------------------------------------------------------


def test_markdown_list_numbers_are_not_sentence_ends() -> None:
    text = "Steps:\n1. Open the app.\n2. Click Save.\n10. Done."
    assert spoken(text, **EAGER) == ["Steps:", "1. Open the app.", "2. Click Save.", "10. Done."]
    inline = "Here are the steps: 1. Open it. 2. Save it."
    assert spoken(inline, **EAGER) == ["Here are the steps: 1. Open it.", "2. Save it."]


def test_markdown_headings_bullets_and_bold_lines() -> None:
    text = "# Title\nSome text.\n## Sub\n- one\n- two\n* three\n\n**Summary**\nAll good."
    assert spoken(text, **EAGER) == [
        "# Title",
        "Some text.",
        "## Sub",
        "- one",
        "- two",
        "* three",
        "**Summary**",
        "All good.",
    ]
    # With the default minimum, short list items are spoken together; headings stand alone.
    assert spoken(text) == [
        "# Title",
        "Some text.\n## Sub",
        "- one\n- two\n* three",
        "**Summary**",
        "All good.",
    ]


def test_markdown_is_never_changed() -> None:
    text = "**Note:** use `x.y` _carefully_.\n\n> Quote. More.\n\n| a | b |\n| 1 | 2 |\n"
    assert "".join(split(text, list(text))) == text


def test_a_line_break_inside_a_sentence_is_not_a_cut() -> None:
    assert spoken("This sentence is\nwrapped over lines.", **EAGER) == [
        "This sentence is\nwrapped over lines."
    ]


# -- lengths --------------------------------------------------------------------------------


def test_first_min_chars_sets_the_length_before_the_first_cut() -> None:
    text = "Sure. I can help with that today. Let me check."
    assert spoken(text, first_min_chars=0, min_chars=0) == [
        "Sure.",
        "I can help with that today.",
        "Let me check.",
    ]
    assert spoken(text, first_min_chars=20, min_chars=0) == [
        "Sure. I can help with that today.",
        "Let me check.",
    ]


def test_min_chars_joins_short_later_sentences() -> None:
    text = "This is the first sentence here. Yes. No. Maybe so. The end is near now."
    assert spoken(text, first_min_chars=0, min_chars=12) == [
        "This is the first sentence here.",
        "Yes. No. Maybe so.",
        "The end is near now.",
    ]


def test_max_chars_cuts_a_long_sentence_at_a_clause() -> None:
    text = (
        "When the model forgets to end its sentences, the splitter still has to cut, "
        "and it prefers a clause boundary; otherwise it cuts between words and keeps going"
    )
    # The last clause mark within 90 characters is the second comma, not the first.
    assert split(text, list(text), first_min_chars=10, min_chars=10, max_chars=90) == [
        "When the model forgets to end its sentences, the splitter still has to cut,",
        " and it prefers a clause boundary; otherwise it cuts between words and keeps going",
    ]
    assert split(text, first_min_chars=10, min_chars=10, max_chars=60) == [
        "When the model forgets to end its sentences,",
        " the splitter still has to cut,",
        " and it prefers a clause boundary;",
        " otherwise it cuts between words and keeps going",
    ]


def test_max_chars_falls_back_to_a_word_boundary() -> None:
    text = "word " * 30
    pieces = split(text, max_chars=22, first_max_chars=22, first_min_chars=0, min_chars=0)
    assert pieces == ["word word word word"] + [" word word word word"] * 6 + [" word word "]


def test_max_chars_never_cuts_inside_a_word() -> None:
    url = "https://example.com/" + "a" * 200
    text = f"See {url} for the rest of it"
    pieces = split(text, list(text), max_chars=40, first_max_chars=40)
    assert pieces[0] == f"See {url}"
    assert "".join(pieces) == text


def test_max_chars_cuts_cjk_text_without_punctuation() -> None:
    text = "这是一个很长的句子没有任何标点符号但是它一直在继续说下去直到永远"
    pieces = split(
        text, list(text), max_chars=20, first_max_chars=20, first_min_chars=2, min_chars=2
    )
    # Ten characters count as twenty.
    assert pieces == [text[:10], text[10:20], text[20:30], text[30:]]


@pytest.mark.parametrize(
    "text",
    [
        "aaaa bbbb cccc.\n\nNext one here.",  # the full stop is the 15th character
        "aaaa bbbb cccc.  \n\nNext one here.",
        "aaaa bbbb Dr.\n\nNext one here.",
        "aaaa bbbb 本語**\u2029Next one here.",
    ],
)
def test_a_sentence_or_paragraph_ending_at_the_limit_is_not_cut_early(text: str) -> None:
    # Past the limit only whitespace, terminators and closers have come: a paragraph
    # break may still end the piece there, so the limit waits for the next word.
    options = {"first_max_chars": 14, "first_min_chars": 0, "min_chars": 0}
    first = text.split("\n")[0].split("\u2029")[0].rstrip()
    assert split(text, **options)[0] == first
    assert split(text, list(text), **options)[0] == first


def test_first_max_chars_bounds_a_long_first_sentence() -> None:
    text = (
        "Sure, I can help you book an appointment for next week, but first I need to "
        "know which day works best for you and at what time."
    )
    assert spoken(text) == [
        "Sure, I can help you book an appointment for next week,",
        "but first I need to know which day works best for you and at what time.",
    ]
    assert spoken(text, first_max_chars=None) == [text]


# -- latency --------------------------------------------------------------------------------


def test_a_sentence_is_released_as_soon_as_a_space_follows_it() -> None:
    # "there. " cannot go on with the sentence, so it is released by the same push: a
    # responder that yields a whole sentence and then pauses is heard at once.
    splitter = SentenceSplitter(first_min_chars=0)
    assert splitter.push("Hello there. ") == ["Hello there."]
    assert splitter.push("How") == []
    assert splitter.push(" are you?") == []
    assert splitter.flush() == [" How are you?"]


def test_a_token_with_its_leading_space_releases_the_sentence() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("Hello there, nice to meet you.") == []
    assert splitter.push(" How") == ["Hello there, nice to meet you."]


@pytest.mark.parametrize(
    ("first", "going_on", "ending"),
    [
        ("We bought apples, pears, etc. ", "and", "The"),
        ("We meet at 5 p.m. ", "today", "Then"),
        ("Is it Smith Jr. ", "who", "We"),
        ("Wait... ", "what", "What"),
        ('He said "hi." ', "he", "Then"),
        ('"Why?" ', "she", "She"),
        ("(See above.) ", "and", "Next"),
        ("Look at No. ", "5", "I"),
    ],
)
def test_the_next_word_decides_after_an_ambiguous_end(
    first: str, going_on: str, ending: str
) -> None:
    # After these, a lowercase word (or a number after "No.") goes on with the sentence.
    splitter = SentenceSplitter(first_min_chars=0)
    assert splitter.push(first) == []
    assert splitter.push(going_on) == []
    splitter = SentenceSplitter(first_min_chars=0)
    assert splitter.push(first) == []
    assert splitter.push(ending) == [first.rstrip()]


def test_a_number_split_across_deltas_is_not_cut() -> None:
    splitter = SentenceSplitter(first_min_chars=0)
    assert splitter.push("Pi is 3.") == []  # the next character decides
    assert splitter.push("14") == []
    assert splitter.push(" exactly. ") == ["Pi is 3.14 exactly."]


def test_an_abbreviation_split_across_deltas_is_not_cut() -> None:
    splitter = SentenceSplitter(first_min_chars=0)
    assert splitter.push("Ask Dr") == []
    assert splitter.push(". ") == []
    assert splitter.push("Who today. Then") == ["Ask Dr. Who today."]


def test_paragraph_breaks_and_headings_are_released_at_once() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("# Heading\n") == ["# Heading"]
    assert splitter.push("A short paragraph\n") == []
    assert splitter.push("\n") == ["\nA short paragraph"]
    assert splitter.flush() == ["\n\n"]


def test_a_cjk_sentence_waits_only_for_the_next_character() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("好的，我来帮你查一下。") == []  # a closing quote could follow
    assert splitter.push("明") == ["好的，我来帮你查一下。"]


# -- the splitter object ----------------------------------------------------------------------


def test_flush_ends_the_reply_and_the_splitter_can_be_reused() -> None:
    splitter = SentenceSplitter(first_min_chars=0)
    assert splitter.push("One. Two") == ["One."]
    assert splitter.pending == " Two"
    assert splitter.flush() == [" Two"]
    assert splitter.flush() == []
    assert splitter.pending == ""
    # The next reply starts afresh: its first piece uses first_min_chars again.
    assert splitter.push("1. Item. Next") == ["1. Item."]


def test_reset_drops_pending_text() -> None:
    splitter = SentenceSplitter()
    splitter.push("Half a sent")
    splitter.reset()
    assert splitter.pending == ""
    assert splitter.push("ence. ") == []
    assert splitter.flush() == ["ence. "]


def test_options_and_repr() -> None:
    splitter = SentenceSplitter()
    assert (splitter.first_min_chars, splitter.min_chars) == (20, 40)
    assert (splitter.max_chars, splitter.first_max_chars) == (300, 120)
    assert repr(splitter) == (
        "SentenceSplitter(first_min_chars=20, min_chars=40, max_chars=300, first_max_chars=120)"
    )
    with pytest.raises(TypeError):
        SentenceSplitter(20)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"first_min_chars": -1}, "first_min_chars must be 0 or more"),
        ({"min_chars": 2.5}, "min_chars must be an int"),
        ({"min_chars": True}, "min_chars must be an int"),
        ({"max_chars": 0}, "max_chars must be 1 or more"),
        ({"first_max_chars": "80"}, "first_max_chars must be an int or None"),
        ({"min_chars": 50, "max_chars": 40}, r"min_chars \(50\) is above max_chars \(40\)"),
        ({"first_min_chars": 130}, r"first_min_chars \(130\) is above first_max_chars \(120\)"),
        (
            {"first_min_chars": 50, "min_chars": 10, "max_chars": 40},
            r"first_min_chars \(50\) is above max_chars \(40\)",
        ),
        ({"abbreviations": "bzw."}, "not one string"),
        ({"abbreviations": ["ok", ""]}, "non-empty words"),
    ],
)
def test_bad_options_raise_configuration_error(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SentenceSplitter(**options)  # type: ignore[arg-type]


def test_push_takes_only_text() -> None:
    splitter = SentenceSplitter()
    with pytest.raises(TypeError, match="takes the next text delta as a str, got bytes"):
        splitter.push(b"hello")  # type: ignore[arg-type]
    assert splitter.push("") == []


def test_a_whole_long_reply_in_one_push_is_split_as_when_streamed() -> None:
    paragraph = "Dr. Smith arrived at 3.15 p.m., e.g. with Jane. 你好。我们走吧！\n\n- Item one.\n"
    text = paragraph * 200  # well over the slice a long delta is taken in
    tokens = [text[k : k + 3] for k in range(0, len(text), 3)]
    assert split(text) == split(text, tokens)
    assert "".join(split(text)) == text


def test_a_long_reply_fed_one_character_at_a_time() -> None:
    paragraph = (
        "Dr. Smith arrived at 3.15 p.m. with the U.S. team, e.g. Jane and Bob. "
        "They talked for a while... then left! Was it useful? Yes.\n\n"
    )
    text = paragraph * 40
    pieces = split(text, list(text))
    assert "".join(pieces) == text
    assert [p.strip() for p in pieces[:4]] == [
        "Dr. Smith arrived at 3.15 p.m. with the U.S. team, e.g. Jane and Bob.",
        "They talked for a while... then left! Was it useful?",
        "Yes.",
        "Dr. Smith arrived at 3.15 p.m. with the U.S. team, e.g. Jane and Bob.",
    ]
