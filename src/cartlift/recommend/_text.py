"""Product text to tokens, chosen per document by the scripts it is written in.

Chinese and Japanese are written without spaces, so a tokenizer that splits on spaces and
punctuation reads ``苹果手机透明保护壳`` as one token that no other title shares. Here each
document is cut into runs of one script:

- runs of other scripts (Latin, Cyrillic, Greek, Hangul, digits, ...) give lower-cased word
  tokens, as before (Korean is written with spaces between words);
- runs of CJK characters (Han, kana) are segmented: in a document without kana (Chinese) by the
  jieba dictionary and HMM segmenter through its Rust binding ``rjieba``, in search mode so a
  long word also yields the dictionary words inside it (``保护壳`` -> ``保护``, ``保护壳``);
  in a document with kana (Japanese, which jieba's Chinese dictionary does not know), and
  wherever ``rjieba`` is not installed, by overlapping character bigrams, the standard
  dictionary-free fallback for CJK retrieval (Lucene's ``CJKBigramFilter``).

So ``Apple iPhone 15 手机壳`` gives ``apple, iphone, 15, 手机, 壳``. Text is NFKC-normalised first,
so full-width letters and digits (``ｉＰｈｏｎｅ１５``) read as their ASCII forms.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Final

__all__ = ["SEGMENTER", "TOKENIZERS", "tokenize"]

# Han (unified ideographs, extensions A-F, compatibility), kana (with the prolonged sound mark)
_HAN: Final = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
_KANA: Final = "\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f"
_RUNS: Final = re.compile(f"([{_HAN}{_KANA}]+)|([^\\W{_HAN}{_KANA}]+)")
_HAS_KANA: Final = re.compile(f"[{_KANA}]")
_WORDS: Final = re.compile(r"(?u)\b\w+\b")

TOKENIZERS: Final = ("auto", "bigrams", "words")
"""``auto``: by script, CJK segmented by rjieba (bigrams for Japanese or without rjieba);
``bigrams``: by script, CJK always as bigrams; ``words``: split on spaces and punctuation only
(what cartlift did before, kept for comparison)."""


def _load_segmenter() -> Callable[[str], list[str]] | None:
    try:
        import rjieba
    except ImportError:  # a platform without a wheel: bigrams still read CJK
        return None
    return rjieba.cut_for_search


_SEGMENT: Final = _load_segmenter()
SEGMENTER: Final = "rjieba" if _SEGMENT is not None else "bigrams"
"""What ``auto`` segments Chinese with on this installation."""


def _bigrams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def tokenize(text: str, tokenizer: str = "auto") -> list[str]:
    """The tokens of one document.

    Parameters
    ----------
    text : str
    tokenizer : {"auto", "bigrams", "words"}
        See :data:`TOKENIZERS`.

    Returns
    -------
    list of str
        Lower-cased tokens in reading order (repeats kept: TF-IDF counts them).

    Examples
    --------
    >>> tokenize("Apple iPhone 15 手机壳")
    ['apple', 'iphone', '15', '手机', '壳']
    >>> tokenize("防水スニーカー")
    ['防水', '水ス', 'スニ', 'ニー', 'ーカ', 'カー']
    """
    if tokenizer == "words":
        return _WORDS.findall(text.lower())
    text = unicodedata.normalize("NFKC", text).lower()
    segment = _SEGMENT if tokenizer == "auto" and not _HAS_KANA.search(text) else None
    tokens: list[str] = []
    for cjk, word in _RUNS.findall(text):
        if word:
            tokens.append(word)
        elif segment is not None:
            tokens.extend(t for t in segment(cjk) if not t.isspace())
        else:
            tokens.extend(_bigrams(cjk))
    return tokens
