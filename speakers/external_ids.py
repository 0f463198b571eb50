"""A client's own id for a speaker (``external_id``), in one normal form that cannot pass for another.

An id is read as a person reads it: two ids that look the same must be the same id, and an id must
not look like one it is not. So, on every write and every lookup:

* NFKC normalisation (fullwidth ``ＥＭＰ`` is ``EMP``, the ligature ``ﬁ`` is ``fi``, a decomposed
  ``é`` is the composed one), then surrounding spaces dropped;
* refused (``invalid_external_id``): control characters, invisible format characters (zero-width
  spaces and joiners, the byte order mark, the soft hyphen, variation selectors, fillers) and
  bidirectional controls (an override can make ``alice‮gnp.exe`` read as ``aliceexe.png``);
* refused: letters of more than one script, except the mixes a name is usually written in (Latin
  with Han, Hiragana and Katakana; with Han and Bopomofo; with Han and Hangul), after Unicode
  TR39's "highly restrictive" level: ``pаypal`` with a Cyrillic ``а`` is refused. An id wholly in
  one script (``алиса``) is accepted even where every letter has a Latin lookalike: telling that
  apart needs Unicode's confusables table, and such an id is a legitimate name in its own script.
"""
from __future__ import annotations

import unicodedata

from .exceptions import InvalidExternalId

MAX_LENGTH = 255  # Speaker.external_id
_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
# Invisible, though not format characters: variation selectors (Mn), and fillers that are letters (Lo).
_INVISIBLE = {chr(c) for c in range(0xFE00, 0xFE10)} | {chr(c) for c in range(0xE0100, 0xE01F0)} | {
    "\u115f", "\u1160", "\u3164", "\u2800", "\u180e", "\u034f"}
_USUAL_MIXES = ({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}, {"LATIN", "HAN", "BOPOMOFO"}, {"LATIN", "HAN", "HANGUL"})
_SCRIPT_OF_NAME = {"CJK": "HAN", "IDEOGRAPHIC": "HAN", "KATAKANA-HIRAGANA": "KATAKANA", "HALFWIDTH": None,
                   "MODIFIER": None}


def external_id_normalise(value: str | None) -> str | None:
    """The normal form of ``value`` (None or blank: no id). Raises InvalidExternalId."""
    if value is None:
        return None
    text = unicodedata.normalize("NFKC", value).strip()
    if not text:
        return None
    for ch in text:
        if ch in _INVISIBLE or unicodedata.category(ch) in _INVISIBLE_CATEGORIES:
            code = f"U+{ord(ch):04X}"
            raise InvalidExternalId(
                f"external_id holds an invisible, control or direction character ({code} "
                f"{unicodedata.name(ch, 'unnamed')}): an id must read as it is.", field="external_id", character=code)
    scripts = _scripts(text)
    if len(scripts) > 1 and not any(scripts <= mix for mix in _USUAL_MIXES):
        raise InvalidExternalId(
            f"external_id mixes the scripts {', '.join(sorted(s.lower() for s in scripts))}: a letter of one script "
            "can pass for another's (a Cyrillic а for a Latin a); write it in one script.", field="external_id",
            scripts=sorted(s.lower() for s in scripts))
    if len(text) > MAX_LENGTH:
        raise InvalidExternalId(f"external_id is longer than {MAX_LENGTH} characters once normalised.",
                                field="external_id", max_length=MAX_LENGTH)
    return text


def _scripts(text: str) -> set[str]:
    """The scripts of the letters of ``text`` (digits, punctuation and marks belong to none)."""
    scripts: set[str] = set()
    for ch in text:
        if not unicodedata.category(ch).startswith("L"):
            continue
        word = unicodedata.name(ch, "").split(" ", 1)[0]
        script = _SCRIPT_OF_NAME.get(word, word)
        if script:
            scripts.add(script)
    return scripts
