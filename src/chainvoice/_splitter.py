"""Speakable pieces from streamed reply text.

:class:`SentenceSplitter` cuts the text deltas of a streamed reply into pieces that a
synthesizer can speak one after the other, releasing each piece as soon as its end is
certain. Joining every piece it returns gives back the text exactly, whatever the delta
boundaries were.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from chainvoice._errors import ConfigurationError

__all__ = ["SentenceSplitter"]

# -- characters ---------------------------------------------------------------------------
# Sentence terminators that are followed by a space in running text.
_SPACED_TERMINATORS = ".!?\u2026\u203c\u2047\u2048\u2049\u0964\u0965\u061f\u06d4\u1362"
# Terminators that end a sentence with no space after them: the ideographic full stop
# and the full-width (and half-width) forms of "!", "?" and ".".
_CJK_TERMINATORS = "\u3002\uff01\uff1f\uff0e\uff61"
# Terminators that end a sentence whatever the word before them is.
_STRONG_TERMINATORS = "!?\u203c\u2047\u2048\u2049\u0964\u0965\u061f\u06d4\u1362"
# Characters that close a sentence after its terminator and stay with it: quotes, brackets,
# and Markdown emphasis ('He said "hi." Then', "**Done.** Next", "「好。」").
_CLOSERS = (
    "\"'\u201d\u2019\u00bb\u203a)]}\u300d\u300f\u3011\u3015\u3017\u3019\u301b"
    "\uff09\u3009\u300b\uff02\uff07\uff3d\uff5d*_`~"
)
# Characters that may open a word; stripped before looking the word up.
_OPENERS = "\"'\u201c\u2018\u00ab\u2039([{\u300c\u300e\u3010\uff08\u3008\u300a*_~`\u00bf\u00a1"
_NEWLINES = "\n\u2028\u2029"
# Han and kana: scripts written without spaces between words.
_CJK_RANGES = (
    "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
    "\U00020000-\U0003134f"
)
# Characters that take about twice as long to say as a Latin letter (Han, kana, Hangul);
# each counts as two towards the length limits.
_WIDE_RANGES = _CJK_RANGES + "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"
_WIDE_WEIGHT = 2
# A longer delta is taken a slice at a time.
_SLICE = 4096

_ESC_CLOSERS = re.escape(_CLOSERS)
# Where a decision may be needed: a terminator or a line break.
_INTERESTING = re.compile(f"[{re.escape(_SPACED_TERMINATORS + _CJK_TERMINATORS + _NEWLINES)}]")
# A terminator run: "?!", "...", '."', "。」".
_RUN_CHARS = frozenset(_SPACED_TERMINATORS + _CJK_TERMINATORS + _CLOSERS)
_RUN = re.compile(f"[{re.escape(_SPACED_TERMINATORS + _CJK_TERMINATORS + _CLOSERS)}]*")
_SPACES = re.compile(r"\s*")
_NONSPACE = re.compile(r"\S")
_WORD_CHAR = re.compile(r"[^\W_]")
_CJK_CHAR = re.compile(f"[{_CJK_RANGES}]")
_WIDE_CHAR = re.compile(f"[{_WIDE_RANGES}]")
# Dotted initialisms: "U.S", "e.g", "a.m", "Ph.D", "z.B" (the final dot excluded).
_INITIALISM = re.compile(r"(?:[^\W\d_]{1,2}\.)+[^\W\d_]{1,2}")

# -- Markdown -----------------------------------------------------------------------------
_BULLETS = "-*+\u2022\u25e6\u25aa\u2023"
_HEADING_LINE = re.compile(r"[ \t]*#{1,6}[ \t]")
_BOLD_LINE = re.compile(r"[ \t]*(\*\*|__)(?:(?!\1).)+\1[:\uff1a]?\s*")
_LIST_LINE = re.compile(f"[ \\t]*(?:[{re.escape(_BULLETS)}]|\\d{{1,9}}[.)])[ \\t]")
# What starts a new Markdown block at the beginning of a line.
_BLOCK_START = re.compile(
    f"(?:[{re.escape(_BULLETS)}]|\\d{{1,9}}[.)]|#{{1,6}}|>|\\|)[ \\t]|\\*\\*|__|```|~~~"
)
# An unfinished beginning of the above: wait for more text before deciding.
_BLOCK_PREFIX = re.compile(f"[{re.escape(_BULLETS)}>|_`~]|\\d{{1,9}}[.)]?|#{{1,6}}|``|~~")

# -- fallback cut points for sentences longer than the limit -------------------------------
# After a clause mark ("a, b", "a; b", "a: b", "a - b", "a — b", "a—b", and the full-width comma,
# enumeration comma, semicolon and colon).
_CLAUSE_END = re.compile(
    f"[,;:\u060c\u061b][{_ESC_CLOSERS}]*(?=\\s)"
    "|(?<=\\s)[-\u2013\u2014](?=\\s)"
    "|(?<=\\S)[\u2013\u2014](?=\\S)"
    f"|[\uff0c\u3001\uff1b\uff1a\ufe50\ufe51][{_ESC_CLOSERS}]*"
)
# The last word end before a space (greedy: the match ends at the last one).
_LAST_WORD_END = re.compile(r".*\S(?=\s)", re.DOTALL)
# The last Han/kana character not followed by a closer.
_LAST_CJK_END = re.compile(f".*[{_CJK_RANGES}](?=[^\\s{_ESC_CLOSERS}])", re.DOTALL)
# The next place where a word ends, for a piece already over the limit.
_NEXT_BREAK = re.compile(
    f"(?<=\\S)(?=\\s)|(?<=[{_CJK_RANGES}{_CJK_TERMINATORS}\uff0c\u3001\uff1b\uff1a])"
    f"(?=[^\\s{_ESC_CLOSERS}])"
)

# -- words after which a full stop does not end a sentence ----------------------------------
# Titles and Latin abbreviations that always come before more of the same sentence.
_ABBREVIATIONS = frozenset(
    (
        *("mr", "mrs", "ms", "mx", "messrs", "mme", "mlle", "dr", "prof", "rev", "hon"),
        *("gen", "col", "capt", "cpt", "lt", "sgt", "maj", "cmdr", "adm", "gov", "sen"),
        *("rep", "pres", "supt", "fr", "st", "mt", "vs", "viz", "cf", "al", "approx"),
        *("incl", "esp", "resp", "ca", "e.g", "i.e"),
    )
)
# Abbreviations that come before a number ("No. 5", "Fig. 3", "pp. 10", "Jan. 5").
_BEFORE_NUMBER = frozenset(
    (
        *("no", "nos", "nr", "vol", "vols", "p", "pp", "ch", "chap", "sec", "sect", "art"),
        *("fig", "figs", "eq", "eqs", "ref", "tel", "ext", "op", "pt", "para", "jan", "feb"),
        *("mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"),
    )
)
# Abbreviations that may end a sentence or go on with it: the next word decides.
_MAY_END = frozenset(
    (
        *("etc", "jr", "sr", "inc", "ltd", "co", "corp", "llc", "plc", "bros", "dept"),
        *("univ", "ave", "blvd", "rd", "hwy", "ft", "hr", "hrs", "min", "mins", "yr"),
        *("yrs", "mo", "mos", "wk", "wks", "oz", "lb", "lbs", "sq", "misc", "govt", "esq"),
    )
)
# Dotted abbreviations that can end a sentence ("... at 5 p.m. Then ...").
_TERMINAL_INITIALISMS = frozenset({"a.m", "p.m"})
# A number after one of these starts a list item: "Steps: 1. Open it. 2. Save it."
_ITEM_AFTER = ":;.!?\u3002\uff01\uff1f\u2026"

# Kinds of line.
_HEADING = 2
_LIST_ITEM = 1
_PLAIN = 0

# Whether a terminator followed by a space ends a sentence.
_NO = 0
_YES = 1
_UNLESS_LOWER = 2  # yes, unless the next word starts in lowercase
_UNLESS_NUMBER = 3  # yes, unless the next word starts in lowercase or is a number

# A decision about one place in the text: (cut position or -1, hard, where to resume).
_Decision = tuple[int, bool, int]


class SentenceSplitter:
    """Cuts the streamed text of a reply into speakable pieces.

    Feed each text delta to :meth:`push`, which returns the pieces that are now complete,
    and call :meth:`flush` at the end of the reply for the rest. Joining every piece
    returned gives back the text exactly, whatever the delta boundaries were: whitespace
    is kept (between pieces it starts the next piece), words are never glued or split,
    and the splitter never alters the text. A piece may start or end with whitespace;
    strip it before synthesis and skip whitespace-only pieces.

    Where it cuts:

    - after a sentence terminator (``. ! ? …``, and the CJK ideographic full stop
      ``。`` and full-width ``! ? .``, which need no space after them), together with
      the closing quotes, brackets and Markdown emphasis that follow it
      (``He said "hi."`` | `` Then``);
    - at a blank line (a paragraph break), at the end of a Markdown heading, and before a
      line that starts a list item, even when the piece is shorter than the minimum.

    It does not cut after abbreviations and titles (``Dr.``, ``Mrs.``, ``e.g.``, ``i.e.``,
    ``U.S.``, ``No. 5``), initials (``J. R. R. Tolkien``), ``etc.``, ``a.m.``, ``p.m.`` or
    an ellipsis followed by a lowercase word, decimal numbers (``3.14``), addresses
    (``example.com``), or list numbers (``1.`` at the start of a line).

    A piece is released as soon as its end is certain. A terminator followed by a space
    is certain at once (``push("Hello there. ")`` returns ``["Hello there."]`` when the
    minimum allows), unless the next word decides: after ``etc.``, ``a.m.``, ``Jr.``,
    ``No.``, an ellipsis or a closing quote or bracket, a lowercase word goes on with the
    sentence, so the piece waits for the first character that is not a space. A
    terminator at the very end of a delta waits for the next character (``"3."``
    followed by ``"14"`` is not a sentence end, and ``"。"`` may be followed by ``"」"``). A
    paragraph break is certain when its second line break arrives. The decisions never
    depend on where the deltas begin and end.

    Lengths are counted in characters, not counting leading whitespace; a Han, kana or
    Hangul character counts as two, as it takes about twice as long to say.

    A splitter serves one reply at a time: :meth:`flush` ends the reply and makes the
    splitter ready for the next one, and :meth:`reset` drops the pending text.
    Pushing costs time in proportion to the new text, not to the whole reply. A splitter
    is not thread-safe.

    Args:
        first_min_chars: The shortest first piece cut at a sentence end: a shorter first
            sentence is joined to the next one. Small, since the first piece decides how
            soon the first audio plays.
        min_chars: The same for every later piece, so that pieces are not choppy.
        max_chars: The longest piece. A longer sentence is cut at its last clause mark
            (comma, semicolon, colon, dash) within the limit, or else at its last word
            boundary; a single word longer than the limit is cut after it, never inside.
            ``None`` for no limit.
        first_max_chars: The same for the first piece, so that a long first sentence
            does not hold back the first audio; it is never above ``max_chars``.
            ``None`` to use ``max_chars``.
        abbreviations: More words after which a full stop never ends a sentence, for
            example ``("bzw.", "ggf.")``; case and a final dot are ignored.

    Raises:
        ConfigurationError: A length is negative or not an integer, a maximum is zero, or a
            minimum is above its maximum.

    Example:
        >>> splitter = SentenceSplitter(first_min_chars=0)
        >>> splitter.push("Dr. Smith arrived at 3.")
        []
        >>> splitter.push("15 p.m. today. He")
        ['Dr. Smith arrived at 3.15 p.m. today.']
        >>> splitter.flush()
        [' He']
    """

    __slots__ = (
        "_abbreviations",
        "_buf",
        "_first_max",
        "_first_min",
        "_hi",
        "_line_start",
        "_max",
        "_min",
        "_options",
        "_overflow",
        "_pieces",
        "_pos",
        "_run_cache",
        "_start",
        "_start_scan",
        "_tail",
        "_wide",
        "_word",
        "_word_scan",
        "_ws_cache",
    )

    _buf: str
    _pieces: int
    _pos: int
    _line_start: int
    _tail: str
    _wide: int
    _start: int
    _start_scan: int
    _word: int
    _word_scan: int
    _hi: int
    _overflow: int
    _ws_cache: tuple[int, int, int] | None
    _run_cache: tuple[int, int] | None

    def __init__(
        self,
        *,
        first_min_chars: int = 20,
        min_chars: int = 40,
        max_chars: int | None = 300,
        first_max_chars: int | None = 120,
        abbreviations: Iterable[str] = (),
    ) -> None:
        self._first_min = _length("first_min_chars", first_min_chars)
        self._min = _length("min_chars", min_chars)
        self._max = _limit("max_chars", max_chars)
        first_max_option = _limit("first_max_chars", first_max_chars)
        self._first_max = _smaller(first_max_option, self._max)
        self._options = (self._first_min, self._min, self._max, first_max_option)
        if self._max is not None and self._min > self._max:
            raise ConfigurationError(
                f"min_chars ({self._min}) is above max_chars ({self._max}); "
                "lower min_chars or raise max_chars"
            )
        if self._first_max is not None and self._first_min > self._first_max:
            name = "first_max_chars" if self._first_max == first_max_option else "max_chars"
            raise ConfigurationError(
                f"first_min_chars ({self._first_min}) is above {name} ({self._first_max}); "
                f"lower first_min_chars or raise {name}"
            )
        if isinstance(abbreviations, str):
            raise ConfigurationError(
                "abbreviations must be a collection of words, not one string; "
                f"write abbreviations=({abbreviations!r},)"
            )
        extra: set[str] = set()
        for word in abbreviations:
            if not isinstance(word, str) or not word.strip(". "):
                raise ConfigurationError(f"abbreviations must be non-empty words, got {word!r}")
            extra.add(word.strip().lower().rstrip("."))
        self._abbreviations = _ABBREVIATIONS | extra
        self.reset()

    def __repr__(self) -> str:
        return (
            f"SentenceSplitter(first_min_chars={self.first_min_chars}, "
            f"min_chars={self.min_chars}, max_chars={self.max_chars}, "
            f"first_max_chars={self.first_max_chars})"
        )

    @property
    def first_min_chars(self) -> int:
        """The shortest first piece cut at a sentence end."""
        return self._options[0]

    @property
    def min_chars(self) -> int:
        """The shortest later piece cut at a sentence end."""
        return self._options[1]

    @property
    def max_chars(self) -> int | None:
        """The longest piece, or ``None`` for no limit."""
        return self._options[2]

    @property
    def first_max_chars(self) -> int | None:
        """The longest first piece as given (it never exceeds ``max_chars``)."""
        return self._options[3]

    @property
    def pending(self) -> str:
        """The text pushed but not yet returned in a piece."""
        return self._buf

    def push(self, delta: str) -> list[str]:
        """Adds a delta of the reply's text.

        Args:
            delta: The next part of the reply, of any length (also empty).

        Returns:
            The pieces completed by this delta, in order; often none.

        Raises:
            TypeError: ``delta`` is not a ``str``.
        """
        if not isinstance(delta, str):
            raise TypeError(
                f"SentenceSplitter.push() takes the next text delta as a str, "
                f"got {type(delta).__name__}"
            )
        if not delta:
            return []
        if len(delta) > _SLICE:
            # The pieces do not depend on the delta boundaries, and a short buffer keeps
            # each cut cheap: take a long text (a whole reply at once) a slice at a time.
            pieces: list[str] = []
            for k in range(0, len(delta), _SLICE):
                pieces += self.push(delta[k : k + _SLICE])
            return pieces
        # Appending to a string nothing else refers to lets CPython grow it in place, so a
        # push costs time in proportion to the delta, not to the pending text.
        buf = self._buf
        self._buf = ""
        buf += delta
        self._buf = buf
        if not delta.isascii():
            self._wide += len(_WIDE_CHAR.findall(delta))
        return self._scan()

    def flush(self) -> list[str]:
        """Ends the reply, returning the rest of the text as its last piece.

        The last piece is returned however short it is (it may also be whitespace only).
        The splitter is then ready for a new reply.

        Returns:
            ``[rest]``, or ``[]`` if nothing is pending.
        """
        rest = self._buf
        self.reset()
        return [rest] if rest else []

    def reset(self) -> None:
        """Drops the pending text and starts over, as for a new reply."""
        self._buf = ""
        self._pieces = 0  # pieces released in this reply
        self._pos = 0  # text before this index is decided (no cut point left in it)
        self._line_start = 0  # where the current line starts; -1 if before the buffer
        self._tail = ""  # last character of the text already released
        self._wide = 0  # wide characters in the buffer
        self._reset_piece()

    # -- scanning ---------------------------------------------------------------------------

    def _reset_piece(self) -> None:
        self._start = -1  # index of the piece's first non-space character, once known
        self._start_scan = 0
        self._word = -1  # index of the piece's first letter or digit, once known
        self._word_scan = 0
        self._hi = -1  # the last cut position within the length limit, once over it
        self._overflow = -1  # over the limit with no cut point: search for one from here
        self._ws_cache = None
        self._run_cache = None

    def _scan(self) -> list[str]:
        out: list[str] = []
        while True:
            buf = self._buf
            n = len(buf)
            if self._overflow >= 0:
                m = _NEXT_BREAK.search(buf, self._overflow)
                if m is None:
                    self._overflow = n
                    return out
                out.append(self._cut(m.start()))
                continue
            m = _INTERESTING.search(buf, self._pos)
            i = m.start() if m is not None else n
            hi = self._hi
            if hi < 0:
                hi = self._over_limit()
            if 0 <= hi < i and self._break_start(i) > hi:
                c = self._fallback_cut(hi)
                if c >= 0:
                    out.append(self._cut(c))
                continue
            if m is None:
                self._pos = n
                return out
            if buf[i] in _NEWLINES:
                decision = self._decide_line_break(i)
            else:
                decision = self._decide_terminator(i)
            if decision is None:
                self._pos = i
                return out
            c, hard, resume = decision
            if buf[i] in _NEWLINES:
                self._line_start = _after_last_newline(buf, i, resume)
            self._pos = resume
            if c >= 0 and self._cut_allowed(c, hard):
                out.append(self._cut(c))

    def _cut(self, c: int) -> str:
        buf = self._buf
        piece = buf[:c]
        self._buf = buf[c:]
        if self._wide and not piece.isascii():
            self._wide -= len(_WIDE_CHAR.findall(piece))
        self._pos = max(self._pos - c, 0)
        self._line_start = self._line_start - c if self._line_start >= c else -1
        self._tail = piece[-1]
        self._pieces += 1
        self._reset_piece()
        return piece

    def _cut_allowed(self, c: int, hard: bool) -> bool:
        start = self._text_start()
        if start < 0 or c <= start:
            return False
        if self._word < 0:
            m = _WORD_CHAR.search(self._buf, self._word_scan)
            if m is None:
                self._word_scan = len(self._buf)
                return False
            self._word = m.start()
        if self._word >= c:
            return False  # nothing to say: only punctuation or symbols so far
        if hard:
            return True
        need = self._min if self._pieces else self._first_min
        return need == 0 or self._length_to(c) >= need

    def _text_start(self) -> int:
        if self._start < 0:
            m = _NONSPACE.search(self._buf, self._start_scan)
            if m is None:
                self._start_scan = len(self._buf)
                return -1
            self._start = m.start()
        return self._start

    def _length_to(self, c: int) -> int:
        """The length of the piece up to ``c``, counting wide characters as two."""
        start = self._start  # only whitespace before it, so no wide characters
        if not self._wide:
            return c - start
        buf = self._buf
        if c - start <= len(buf) - c:  # count the shorter side
            wide = len(_WIDE_CHAR.findall(buf, start, c))
        else:
            wide = self._wide - len(_WIDE_CHAR.findall(buf, c))
        return c - start + (_WIDE_WEIGHT - 1) * wide

    def _index_for(self, start: int, length: int) -> int:
        """The first index ``c`` at which the piece from ``start`` is ``length`` long."""
        if not self._wide:
            return start + length
        c = start
        span = 0
        for m in _WIDE_CHAR.finditer(self._buf, start):
            p = m.start()
            if span + (p - c) >= length:
                break
            span += p - c + _WIDE_WEIGHT
            c = p + 1
            if span >= length:
                return c
        return c + (length - span)

    # -- decisions ----------------------------------------------------------------------------

    def _decide_terminator(self, i: int) -> _Decision | None:
        buf = self._buf
        n = len(buf)
        e = self._run_end(i)
        if e == n:
            return None  # a closing quote or another terminator may follow
        run = buf[i:e]
        after = buf[e]
        cjk = any(ch in _CJK_TERMINATORS for ch in run)
        if not after.isspace():
            if cjk:
                if run == "\uff0e" and buf[i - 1 : i].isdigit() and after.isdigit():
                    return (-1, False, e)  # a full-width decimal point
                return (e, False, e)
            if _CJK_CHAR.match(after) and (
                not any(ch in ".\u2026" for ch in run) or _CJK_CHAR.match(buf[i - 1 : i])
            ):
                return (e, False, e)  # "你好!我是", "你好.我是"
            return (-1, False, e)  # "3.14", "U.S", "example.com", "wait...what"
        if cjk:
            return (e, False, e)
        k, newlines = self._space_end(e)
        if newlines >= 2:
            return (-1, False, e)  # a paragraph break: decided at its line break
        resume = e if newlines else k  # a line break after it has its own rules
        end = self._sentence_end(i, e)
        if end == _NO:
            return (-1, False, resume)
        if end == _YES:
            return (e, False, resume)
        if k == n:
            return None  # the next word decides
        nxt = buf[k]
        if nxt.islower() or (end == _UNLESS_NUMBER and nxt.isdigit()):
            return (-1, False, resume)  # "etc. and", "p.m. today", "Wait... what", "No. 5"
        return (e, False, resume)

    def _sentence_end(self, i: int, e: int) -> int:
        """Whether the terminator run ``buf[i:e]``, followed by a space, ends a sentence."""
        buf = self._buf
        run = buf[i:e]
        closed = any(ch in _CLOSERS for ch in run)
        if any(ch in _STRONG_TERMINATORS for ch in run):
            return _UNLESS_LOWER if closed else _YES  # '"Why?" she asked'
        if "\u2026" in run or run.count(".") > 1:
            return _UNLESS_LOWER  # an ellipsis: "Wait... what", "I see... Then"
        j = i
        stop = max(i - 40, 0)
        while j > stop and not buf[j - 1].isspace():
            j -= 1
        word = buf[j:i].lstrip(_OPENERS)
        lowered = word.lower()
        if lowered in self._abbreviations:
            return _NO
        if len(word) == 1 and word.isalpha() and not _CJK_CHAR.match(word):
            return _NO  # an initial: "J. R. R. Tolkien"
        if _INITIALISM.fullmatch(word):
            # "U.S.", "e.g.", "Ph.D." do not end a sentence; "a.m." and "p.m." may.
            return _UNLESS_LOWER if lowered in _TERMINAL_INITIALISMS else _NO
        if lowered in _BEFORE_NUMBER:
            return _UNLESS_NUMBER
        if lowered in _MAY_END:
            return _UNLESS_LOWER
        if len(word) <= 3 and word.isdigit() and self._starts_item(j):
            return _NO  # a list number
        return _UNLESS_LOWER if closed else _YES

    def _starts_item(self, j: int) -> bool:
        """Whether a number at ``j`` numbers a list item (at a line start, after a colon)."""
        buf = self._buf
        while j > 0 and buf[j - 1] in " \t>*#":
            j -= 1
        prev = buf[j - 1] if j > 0 else self._tail
        return prev == "" or prev in _NEWLINES or prev in _ITEM_AFTER

    def _decide_line_break(self, i: int) -> _Decision | None:
        buf = self._buf
        k, newlines = self._space_end(i)
        j = i
        while j > 0 and buf[j - 1].isspace():
            j -= 1
            if buf[j] in _NEWLINES:
                # The rest of a run of line breaks that was decided at its first one
                # when the run had reached the end of the text.
                return (-1, False, k)
        if newlines >= 2:
            return (self._space_start(i), True, k)  # a paragraph break
        kind = self._line_kind(i)
        if kind == _HEADING:
            return (self._space_start(i), True, k)
        if k == len(buf):
            return None
        block = _BLOCK_START.match(buf, k)
        if block is None and _BLOCK_PREFIX.fullmatch(buf, k):
            return None  # "-" or "12" so far: a list item may be starting
        if block is not None or kind == _LIST_ITEM:
            return (self._space_start(i), False, k)
        return (-1, False, k)

    def _line_kind(self, i: int) -> int:
        start = self._line_start
        if start < 0:
            return _PLAIN
        buf = self._buf
        if _HEADING_LINE.match(buf, start, i) or _BOLD_LINE.fullmatch(buf, start, i):
            return _HEADING
        if _LIST_LINE.match(buf, start, i):
            return _LIST_ITEM
        return _PLAIN

    def _run_end(self, i: int) -> int:
        cache = self._run_cache
        end = cache[1] if cache is not None and cache[0] == i else i
        m = _RUN.match(self._buf, end)
        end = m.end() if m is not None else end
        self._run_cache = (i, end)
        return end

    def _space_end(self, start: int) -> tuple[int, int]:
        """The end of the whitespace at ``start``, and the line breaks in it."""
        cache = self._ws_cache
        if cache is not None and cache[0] == start:
            _, end, newlines = cache
        else:
            end, newlines = start, 0
        buf = self._buf
        m = _SPACES.match(buf, end)
        new_end = m.end() if m is not None else end
        if new_end > end:
            newlines += _count_newlines(buf, end, new_end)
        self._ws_cache = (start, new_end, newlines)
        return new_end, newlines

    def _break_start(self, i: int) -> int:
        """Where a cut decided at ``i`` (or at the end of the text) starts, for the limit.

        A terminator cuts after its run, which belongs to the sentence that it ends. A line
        break cuts where its whitespace starts, and a terminator run right before that
        belongs to the sentence too. At the end of the text, a line break may still come.
        """
        buf = self._buf
        if i < len(buf) and buf[i] not in _NEWLINES:
            return i
        j = self._space_start(i)
        while j > 0 and buf[j - 1] in _RUN_CHARS:
            j -= 1
        return j

    def _space_start(self, i: int) -> int:
        buf = self._buf
        while i > 0 and buf[i - 1].isspace():
            i -= 1
        return i

    # -- the length limit --------------------------------------------------------------------

    def _over_limit(self) -> int:
        """Finds the last cut position within the length limit, once the text passes it."""
        limit = self._max if self._pieces else self._first_max
        if limit is None:
            return -1
        start = self._text_start()
        if start < 0:
            return -1
        if len(self._buf) - start + (_WIDE_WEIGHT - 1) * self._wide <= limit:
            return -1
        self._hi = self._index_for(start, limit + 1) - 1
        return self._hi

    def _fallback_cut(self, hi: int) -> int:
        """A cut within the limit at a clause mark or a word boundary, or -1 to search on."""
        buf = self._buf
        start = self._text_start()
        need = self._min if self._pieces else self._first_min
        lo = max(self._index_for(start, need), start + 1)
        if lo <= hi:
            best = -1
            for m in _CLAUSE_END.finditer(buf, max(lo - 8, start), hi + 1):
                if lo <= m.end() <= hi:
                    best = m.end()
            if best >= 0:
                return best
            word_end = _LAST_WORD_END.match(buf, lo - 1, hi + 1)
            if word_end is not None:
                return word_end.end()
            cjk_end = _LAST_CJK_END.match(buf, lo - 1, hi + 1)
            if cjk_end is not None:
                return cjk_end.end()
        self._overflow = hi + 1  # one long word: cut where it ends
        return -1


def _count_newlines(text: str, a: int, b: int) -> int:
    return text.count("\n", a, b) + text.count("\u2028", a, b) + 2 * text.count("\u2029", a, b)


def _after_last_newline(text: str, a: int, b: int) -> int:
    return max(text.rfind(ch, a, b) for ch in _NEWLINES) + 1


def _length(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an int, got {value!r}")
    if value < 0:
        raise ConfigurationError(f"{name} must be 0 or more, got {value}")
    return value


def _limit(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an int or None, got {value!r}")
    if value < 1:
        raise ConfigurationError(f"{name} must be 1 or more (or None for no limit), got {value}")
    return value


def _smaller(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
