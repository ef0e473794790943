"""Product text to tokens, chosen per document by the scripts it is written in.

Chinese and Japanese are written without spaces, so a tokenizer that splits on spaces and
punctuation reads ``苹果手机透明保护壳`` as one token that no other title shares. Here each
document is cut into runs of one script:

- runs of other scripts (Latin, Cyrillic, Greek, Hangul, digits, ...) give lower-cased word
  tokens, as before (Korean is written with spaces between words);
- runs of CJK characters (Han, kana) are segmented: in a document without kana (Chinese) by the
  jieba dictionary and HMM segmenter through its Rust binding ``rjieba``, in jieba's accurate
  mode (the one its own keyword extraction uses). Search mode, which also yields the words inside
  a long word (``智能手机`` -> ``智能``, ``能手``, ``手机``, ``智能手机``), is made for query recall in
  a search index; for product-to-product similarity its pieces tie unrelated products together
  (``能手`` is no word of the title) and it measured worse (README, "Product text in any
  language");
  in a document with kana (Japanese, which jieba's Chinese dictionary does not know), and
  wherever ``rjieba`` is not installed, by overlapping character bigrams, the standard
  dictionary-free fallback for CJK retrieval (Lucene's ``CJKBigramFilter``).

So ``Apple iPhone 15 手机壳`` gives ``apple, iphone, 15, 手机, 壳``. Text is NFKC-normalised first,
so full-width letters and digits (``ｉＰｈｏｎｅ１５``) read as their ASCII forms.

Names a dictionary cannot know: a shop's brand names (often coined, or transliterated syllable by
syllable: ``卡诺维``) are cut by jieba's HMM into pieces that unrelated brands share (``卡`` +
``诺维``), which makes products of different brands look alike. The catalog says which strings are
names, in its brand (and category) column, so ``ContentBased`` gives those values to the segmenter
as extra dictionary words (``words=``): a brand is then one token in every title that contains it.
This is what jieba's user dictionaries are for; nothing is learned from the evaluation.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import Final

__all__ = ["SEGMENTER", "TOKENIZERS", "dictionary_words", "tokenize"]

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
    return rjieba.cut


_SEGMENT: Final = _load_segmenter()
SEGMENTER: Final = "rjieba" if _SEGMENT is not None else "bigrams"
"""What ``auto`` segments Chinese with on this installation."""


@functools.lru_cache(maxsize=4)
def _segmenter_with(words: frozenset[str]) -> Callable[[str], list[str]] | None:
    """A segmenter whose dictionary also holds ``words`` (its own instance: the default one is shared).

    Loading jieba's dictionary takes about a second, so the few most recent vocabularies are kept.
    """
    if _SEGMENT is None or not words:
        return _SEGMENT
    import rjieba

    jieba = rjieba.Jieba()
    for word in sorted(words):
        jieba.add_word(word, None, None)  # no frequency given: jieba picks one that keeps it whole

    return jieba.cut


def dictionary_words(values: Iterable[str]) -> frozenset[str]:
    """The Chinese names among ``values`` (e.g. a catalog's brands) as segmenter words.

    Each value's runs of Han characters of two or more, NFKC-normalised and lower-cased as
    `tokenize` sees them; ``Apple 苹果`` gives ``苹果``. Runs with kana are left out (Japanese
    text is read as bigrams).
    """
    runs: set[str] = set()
    for value in values:
        text = unicodedata.normalize("NFKC", value).lower()
        if _HAS_KANA.search(text):
            continue
        runs.update(run for run, _ in _RUNS.findall(text) if len(run) > 1)
    return frozenset(runs)


def _bigrams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def tokenize(text: str, tokenizer: str = "auto", *, words: frozenset[str] = frozenset()) -> list[str]:
    """The tokens of one document.

    Parameters
    ----------
    text : str
    tokenizer : {"auto", "bigrams", "words"}
        See :data:`TOKENIZERS`.
    words : frozenset of str
        Extra dictionary words for Chinese (``auto`` with rjieba), e.g. `dictionary_words` of the
        catalog's brands: each is kept whole where it occurs.

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
    segment = _segmenter_with(words) if tokenizer == "auto" and not _HAS_KANA.search(text) else None
    tokens: list[str] = []
    for cjk, word in _RUNS.findall(text):
        if word:
            tokens.append(word)
        elif segment is not None:
            tokens.extend(t for t in segment(cjk) if not t.isspace())
        else:
            tokens.extend(_bigrams(cjk))
    return tokens
