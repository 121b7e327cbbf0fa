"""Natural-looking filler text from a fixed vocabulary.

Common English words, mostly one token each in Llama-style BPE vocabularies,
arranged in sentences so tokenizers and caches see ordinary text rather than
one repeated token.
"""

from __future__ import annotations

import random

_WORDS = """
the of and to in is that for it as was with be by on not he this are or his from at which
but have an they you were her all she there would their we him been has when who will more
no if out so said what up its about into than them can only other new some could time these
two may then do first any my now such like our over man me even most made after also did many
before must through back years where much your way well down should because each just those
people how too little state good very make world still own see men work long get here between
both life being under never day same another know while last might us great old year off come
since against go came right used take three states himself few house use during without again
place around however home small found thought went say part once general high upon school every
does got united left number course war until always away something fact though water less public
put think almost hand enough far took head yet government system better set told nothing night
end why called find going look asked later knew point next program city business give group
toward young days let room president side social given present several order national possible
rather second face per among form important often things looked early white case john become
large big need four within felt along children saw best church ever least power development light
thing seemed family interest want members others mind country area done turned although open god
service problem certain kind different thus began door help sense means whole matter perhaps
itself york times law human line above name example action company hands local show whether five
history gave today either act feet across taken past quite anything seen having death experience
body word half really field am car words already themselves information tell together college
shall money period held keep sure probably free seems real behind cannot miss political air
question making office brought whose special major heard problems ago became federal moment study
available known result street economic boy position reason change south board individual job
society areas west close turn love community true court force full seem am private million
""".split()

# each word once, in order
VOCABULARY: tuple[str, ...] = tuple(dict.fromkeys(_WORDS))
_CLOSERS = [".", ".", ".", ",", ";", "?"]


def words(rng: random.Random, n: int) -> list[str]:
    """``n`` pieces of text (words and punctuation marks), sentence-shaped."""
    out: list[str] = []
    sentence_left = rng.randint(6, 18)
    while len(out) < n:
        word = rng.choice(_WORDS)
        if sentence_left == 0:
            out.append(rng.choice(_CLOSERS))
            sentence_left = rng.randint(6, 18)
            continue
        out.append(word)
        sentence_left -= 1
    return out[:n]


def join(pieces: list[str]) -> str:
    """Join pieces with spaces, punctuation attached to the word before it."""
    text = " ".join(pieces)
    for mark in (".", ",", ";", "?"):
        text = text.replace(" " + mark, mark)
    return text
