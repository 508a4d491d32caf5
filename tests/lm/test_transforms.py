"""Conjugate-prompting transforms: the reference's strings, inverses, translate's sources."""

from __future__ import annotations

import pytest

from shiftlab.errors import ConfigError, DataError
from shiftlab.lm.transforms import TRANSFORMS, make_transform
from shiftlab.lm.transforms.pig_latin import decode_word

LABEL_WORDS = [" positive", " negative", " spam", " ham", " yes", " no"]

# kothasuhas/understanding-forgetting icl_vs_if/create_datasets.py: the 'en' strings and their
# 'ls' (leetspeak) and 'pl' (Pig Latin) versions, as hard-coded there.
REFERENCE = [
    ("Repeat the input.", "R3p347 7h3 1npu7.", "Epeatray ethay inputyay."),
    (
        "Capitalize every character.",
        "C4p174l1z3 3v3rY Ch4r4c73R.",
        "Apitalizecay everyay aracterchay.",
    ),
    ("Input: ", "1npu7: ", "Inputyay: "),
    ("Output: ", "0u7pu7: ", "Outputyay: "),
    ("What", "Wh47", "Atwhay"),
    ("plus", "Plu5", "usplay"),
    ("minus", "M1nu5", "inusmay"),
    ("times", "71m35", "imestay"),
]

# icl_vs_if/sentences/random_sentences_{en,ls,pl}.txt, lines 1-4, 10 and 38.
SENTENCES = [
    (
        "Trash covered the landscape like sprinkles do a birthday cake.",
        "7r45H C0v3r3D 7h3 L4nd5c4p3 L1k3 5pr1nkl35 D0 4 81r7hd4Y C4k3.",
        "Ashtray overedcay ethay andscapelay ikelay inkles-spray oday ayay irthdaybay akecay.",
    ),
    (
        "I am my aunt's sister's daughter.",
        "1 4M MY 4un7'5 51573r'5 D4ugh73R.",
        "Iyay amyay ymay auntsyay isters-say aughterday.",
    ),
    (
        "It's a skateboarding penguin with a sunhat!",
        "17'5 4 5k473804rd1nG P3ngu1N W17H 4 5unh47!",
        "Itsyay ayay ateboardingskay enguinpay ithway ayay unhatsay!",
    ),
    (
        "The hand sanitizer was actually clear glue.",
        "7h3 H4nD 54n171z3R W45 4c7u4llY Cl34R Glu3.",
        "Ethay andhay anitizersay asway actuallyay earclay ueglay.",
    ),
    (
        "Honestly, I didn't care much for the first season, so I didn't bother with the second.",
        "H0n357ly, 1 D1dn'7 C4r3 MucH F0R 7h3 F1r57 53450n, 50 1 D1dn'7 807h3R W17H 7h3 53c0nD.",
        "Onestlyhay, Iyay idntday arecay uchmay orfay ethay irstfay easonsay, osay Iyay idntday "
        "otherbay ithway ethay econdsay.",
    ),
    (
        "Hang on, my kittens are scratching at the bathtub and they'll upset by the lack of "
        "biscuits.",
        "H4nG 0n, MY K1773n5 4r3 5cr47ch1nG 47 7h3 847h7u8 4nD 7h3y'lL Up537 8Y 7h3 L4cK 0F "
        "815cu175.",
        "Anghay onyay, ymay ittenskay areyay atchingscray atyay ethay athtub-bay andyay eyllthay "
        "upsetyay ybay ethay acklay ofyay iscuitsbay.",
    ),
]


def test_registry_names_and_citation() -> None:
    assert TRANSFORMS.names() == ["leetspeak", "pig_latin", "translate"]
    assert {e.citation for e in TRANSFORMS} == {"2309.10105"}


def test_unknown_transform_and_option_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="did you mean 'leetspeak'"):
        make_transform("leetspeek")
    with pytest.raises(ConfigError, match="transforms.leetspeak.cas"):
        make_transform("leetspeak", cas="ends")
    with pytest.raises(ConfigError, match="must be one of"):
        make_transform("leetspeak", case="upper")


@pytest.mark.parametrize(("en", "ls", "pl"), REFERENCE + SENTENCES)
def test_forward_reproduces_the_reference(en: str, ls: str, pl: str) -> None:
    assert make_transform("leetspeak").forward(en) == ls
    assert make_transform("pig_latin").forward(en) == pl


@pytest.mark.parametrize("name", ["leetspeak", "pig_latin"])
@pytest.mark.parametrize("word", LABEL_WORDS)
def test_label_words_round_trip(name: str, word: str) -> None:
    t = make_transform(name)
    assert t.forward(word) != word
    assert t.inverse(t.forward(word)) == word


@pytest.mark.parametrize(
    "sentence",
    [
        "the hand sanitizer was actually clear glue.",
        "she cried diamonds!",
        "rock music approaches at high velocity.",
        "the review was negative, the movie was not.",
        "this message is spam? yes",
    ],
)
def test_leetspeak_round_trips_lower_case_sentences(sentence: str) -> None:
    """Lower-case text round-trips; words left without a letter ("at" -> "47", "is" -> "15")
    need numbers="decode"."""
    t = make_transform("leetspeak", numbers="decode")
    assert t.inverse(t.forward(sentence)) == sentence


def test_leetspeak_inverse_ambiguities_are_resolved_as_documented() -> None:
    t = make_transform("leetspeak")
    assert t.inverse("Wh47 15 7 Plu5 9? 16") == "what 15 7 plus 9? 16"  # numbers kept
    assert t.inverse(t.forward("She said Positive")) == "she said positive"  # case is lost
    decode = make_transform("leetspeak", numbers="decode")
    assert decode.inverse("Wh47 15 4") == "what is a"
    preserve = make_transform("leetspeak", case="preserve")
    assert preserve.forward("Spam HELLO") == "5p4m H3LL0"
    assert preserve.inverse("5p4m H3LL0") == "spam HELLO"
    assert preserve.inverse(preserve.forward(" negative")) == " negative"


@pytest.mark.parametrize(("en", "_ls", "pl"), SENTENCES)
def test_pig_latin_inverse_is_exact_on_what_forward_made(en: str, _ls: str, pl: str) -> None:
    t = make_transform("pig_latin")
    assert t.inverse(t.forward(en)) == en
    assert t.inverse(pl) == en


def test_pig_latin_remembers_given_words_and_decodes_others_by_rule() -> None:
    seeded = make_transform("pig_latin", words=LABEL_WORDS)
    assert seeded.inverse(" esyay, onay") == " yes, no"
    fresh = make_transform("pig_latin")
    # Colliding words: "yes" and "es" share "esyay"; "every" and "ever" share "everyay".
    assert fresh.inverse("esyay") == "es"
    assert fresh.inverse("Ashtray at-thay inkles-spray ymay ethay inputyay") == (
        "Trash that sprinkles my the input"
    )
    assert fresh.inverse("ATWHAY") == "WHAT"
    assert decode_word("usplay") == "splu"  # the documented failure of the rule alone


def test_pig_latin_keeps_numbers_and_hyphenated_words() -> None:
    t = make_transform("pig_latin")
    out = t.forward("What is 7 plus 9? A five-year-old knows.")
    assert out == "Atwhay isyay 7 usplay 9? Ayay ivefay-earyay-oldyay owsknay."
    assert t.inverse(out) == "What is 7 plus 9? A five-year-old knows."


ROWS = [
    {"text": "great movie", "label": "positive", "text_fr": "super film", "label_fr": "positif"},
    {"text": "awful plot", "label": "negative", "text_fr": "intrigue nulle", "label_fr": "négatif"},
]


def test_translate_from_columns() -> None:
    t = make_transform(
        "translate",
        rows=ROWS,
        column="text_fr",
        label_column="label_fr",
        table={"Review:": "Critique :", "Sentiment:": "Sentiment :"},
    )
    prompt = "Review: great movie\nSentiment: positive\n\nReview: awful plot\nSentiment:"
    assert t.forward(prompt) == (
        "Critique : super film\nSentiment : positif\n\nCritique : intrigue nulle\nSentiment :"
    )
    for word in [" positive", " negative"]:
        assert t.inverse(t.forward(word)) == word
    assert t.inverse(" positif, sans doute") == " positive, sans doute"
    assert t.inverse(" positifs") == " positifs"  # never inside a longer word


def test_translate_from_labels_and_function() -> None:
    t = make_transform(
        "translate",
        function="html:escape",
        inverse_function="html:unescape",
        labels={"yes": "oui"},
    )
    assert t.forward("a<b") == "a&lt;b"
    assert t.inverse("a&lt;b") == "a<b"
    labels_only = make_transform("translate", labels={"yes": "oui", "no": "non"})
    for word in [" yes", " no"]:
        assert labels_only.inverse(labels_only.forward(word)) == word


def test_translate_errors() -> None:
    with pytest.raises(ConfigError, match="cannot import module 'no_such_module_xyz'"):
        make_transform("translate", function="no_such_module_xyz:f")
    with pytest.raises(ConfigError, match="has no attribute 'nothing'"):
        make_transform("translate", function="html:nothing")
    with pytest.raises(ConfigError, match="must be 'module:function'"):
        make_transform("translate", function="html.escape")
    with pytest.raises(ConfigError, match="translate needs"):
        make_transform("translate")
    with pytest.raises(DataError, match="column 'text_de' is not in row 0"):
        make_transform("translate", rows=ROWS, column="text_de")
    bad = [*ROWS, {**ROWS[0], "label_fr": "bon"}]
    with pytest.raises(DataError, match="translated both as"):
        make_transform("translate", rows=bad, column="text_fr", label_column="label_fr")
    with pytest.raises(ConfigError, match="both translate to"):
        make_transform("translate", labels={"good": "bon", "fine": "bon"})
    t = make_transform("translate", rows=ROWS, column="text_fr")
    with pytest.raises(DataError, match="has a translation"):
        t.forward("nothing known here")
