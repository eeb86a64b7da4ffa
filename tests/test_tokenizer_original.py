"""XLMTokenizer(preprocessing="original_xlm") against a reference built here from the original pipeline's
published parts, not from our code: facebookresearch/XLM's tools/tokenize.sh order, the Moses Perl
one-liners (transcribed below and, where `perl` is installed, checked against Perl itself),
sacremoses' tokenizer with tokenizer.perl's character classes and word loop, XLM's
lowercase_and_remove_accent.py, and fastBPE's applybpe merge loop."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import unicodedata

import pytest

from xlm.tokenizer import XLMTokenizer

regex = pytest.importorskip("regex")
sacremoses = pytest.importorskip("sacremoses")

from test_tokenizer import LANG_TEXTS, MERGES, VARIED, VOCAB, VOCAB_DIR, corpus  # noqa: E402

PERL = shutil.which("perl")
needs_perl = pytest.mark.skipif(PERL is None, reason="perl is not installed")

# The issue's cases: Moses' rules depend on case; İ; C* characters inside a word.
ISSUE_CASES = [
    "Click OK. The next…",
    "It happened in Jan. 2021 in the U.S.",
    "İstanbul is big.",
    "soft\u00adhyphen and zero\u200bwidth inside words",
]

# --- replace-unicode-punctuation.perl, normalize-punctuation.perl: on UTF-8 bytes, as Perl runs them
# (neither script has `use utf8`), one substitution per script line, in the scripts' order.
B = lambda s: s.encode("utf-8")  # noqa: E731
REPLACE_UNICODE = [(B(a), B(b)) for a, b in [
    ("，", ","), ("。 *", ". "), ("、", ","), ("”", '"'), ("“", '"'), ("∶", ":"), ("：", ":"), ("？", "?"),
    ("《", '"'), ("》", '"'), ("）", ")"), ("！", "!"), ("（", "("), ("；", ";"), ("１", "1"), ("」", '"'),
    ("「", '"'), ("０", "0"), ("３", "3"), ("２", "2"), ("５", "5"), ("６", "6"), ("９", "9"), ("７", "7"),
    ("８", "8"), ("４", "4"), ("． *", ". "), ("～", "~"), ("’", "'"), ("…", "..."), ("━", "-"), ("〈", "<"),
    ("〉", ">"), ("【", "["), ("】", "]"), ("％", "%"),
]]
NBSP = "\u00a0"
NORMALIZE = [
    (r"\r", ""), (r"\(", " ("), (r"\)", ") "), (r" +", " "), (r"\) ([\.\!\:\?\;\,])", r")\1"), (r"\( ", "("),
    (r" \)", ")"), (r"(\d) \%", r"\1%"), (r" :", ":"), (r" ;", ";"), (r"\`", "'"), (r"\'\'", ' " '),
    ("„", '"'), ("“", '"'), ("”", '"'), ("–", "-"), ("—", " - "), (r" +", " "), ("´", "'"),
    ("(?i)([a-z])‘([a-z])", r"\1'\2"), ("(?i)([a-z])’([a-z])", r"\1'\2"), ("‘", "'"), ("‚", "'"), ("’", '"'),
    ("''", '"'), ("´´", '"'), ("…", "..."),
    (f"{NBSP}«{NBSP}", ' "'), (f"«{NBSP}", '"'), ("«", '"'), (f"{NBSP}»{NBSP}", '" '), (f"{NBSP}»", '"'),
    ("»", '"'),
    (f"{NBSP}\\%", "%"), (f"nº{NBSP}", "nº "), (f"{NBSP}:", ":"), (f"{NBSP}ºC", " ºC"), (f"{NBSP}cm", " cm"),
    (f"{NBSP}\\?", "?"), (f"{NBSP}\\!", "!"), (f"{NBSP};", ";"), (f",{NBSP}", ", "), (r" +", " "),
]


def perl_bytes_sub(rules, line: str) -> str:
    data = B(line) + b"\n"  # the scripts see each line with its newline
    for pattern, replacement in rules:
        data = re.sub(pattern if isinstance(pattern, bytes) else B(pattern),
                      replacement if isinstance(replacement, bytes) else B(replacement), data)
    assert data.endswith(b"\n")
    return data[:-1].decode("utf-8")


def normalize_rules(lang: str) -> list:
    rules = list(NORMALIZE)
    if lang == "en":
        rules.append((r"\"([,\.]+)", r'\1"'))
    elif lang not in ("cs", "cz"):
        rules += [(r',\"', '",'), (r"(\.+)\"(\s*[^<])", r'"\1\2')]
    rules.append((f"(\\d){NBSP}(\\d)", r"\1,\2" if lang in ("de", "es", "cz", "cs", "fr") else r"\1.\2"))
    return rules


def ref_clean(line: str, lang: str) -> str:
    """replace-unicode-punctuation | normalize-punctuation -l lang | remove-non-printing-char."""
    line = perl_bytes_sub(REPLACE_UNICODE, line)
    line = perl_bytes_sub(normalize_rules(lang), line)
    return regex.sub(r"\p{C}", " ", line)


# --- tokenizer.perl -no-escape: sacremoses' steps, with Perl's Unicode classes written as in the
# script and the script's word loop (which splits the last word's final dot since 2018).
class PerlClassesTokenizer(sacremoses.MosesTokenizer):
    PAD_NOT_ISALNUM = regex.compile(r"([^\p{Alphabetic}\p{Nd}\s\.\'\`\,\-])"), r" \1 "
    COMMA_SEPARATE_1 = regex.compile(r"([^\p{N}])[,]"), r"\1 , "
    COMMA_SEPARATE_2 = regex.compile(r"[,]([^\p{N}])"), r" , \1"
    COMMA_SEPARATE_3 = regex.compile(r"([\p{N}])[,]$"), r"\1 ,"
    ENGLISH_SPECIFIC_APOSTROPHE = [
        (regex.compile(r"([^\p{Alphabetic}])[']([^\p{Alphabetic}])"), r"\1 ' \2"),
        (regex.compile(r"([^\p{Alphabetic}\p{N}])[']([\p{Alphabetic}])"), r"\1 ' \2"),
        (regex.compile(r"([\p{Alphabetic}])[']([^\p{Alphabetic}])"), r"\1 ' \2"),
        (regex.compile(r"([\p{Alphabetic}])[']([\p{Alphabetic}])"), r"\1 '\2"),
        (regex.compile(r"([\p{N}])[']([s])"), r"\1 '\2"),
    ]
    FR_IT_SPECIFIC_APOSTROPHE = [
        (regex.compile(r"([^\p{Alphabetic}])[']([^\p{Alphabetic}])"), r"\1 ' \2"),
        (regex.compile(r"([^\p{Alphabetic}])[']([\p{Alphabetic}])"), r"\1 ' \2"),
        (regex.compile(r"([\p{Alphabetic}])[']([^\p{Alphabetic}])"), r"\1 ' \2"),
        (regex.compile(r"([\p{Alphabetic}])[']([\p{Alphabetic}])"), r"\1' \2"),
    ]

    def handles_nonbreaking_prefixes(self, text: str) -> str:
        prefixes = {p: 1 for p in self.NONBREAKING_PREFIXES}
        prefixes.update({p: 2 for p in self.NUMERIC_ONLY_PREFIXES})
        words = text.split(" ")
        out = []
        for i, word in enumerate(words):
            match = regex.match(r"^(\S+)\.$", word)
            if match:
                pre = match.group(1)
                if i == len(words) - 1:
                    word = pre + " ."
                elif ((regex.search(r"\.", pre) and regex.search(r"\p{Alphabetic}", pre)) or prefixes.get(pre) == 1
                      or regex.match(r"^[\p{Lowercase}]", words[i + 1])):
                    pass
                elif prefixes.get(pre) == 2 and regex.match(r"^[0-9]+", words[i + 1]):
                    pass
                else:
                    word = pre + " ."
            out.append(word)
        return " ".join(out)


_MOSES: dict = {}


def ref_moses(text: str, lang: str) -> list[str]:
    if lang not in _MOSES:
        _MOSES[lang] = PerlClassesTokenizer(lang=lang)
    # tokenizer.perl's loop splits on single spaces after squeezing them: do the same
    return _MOSES[lang].tokenize(regex.sub(r"\s+", " ", text).strip(), escape=False)


def ref_romanian(text: str) -> str:
    """WMT16 normalise-romanian.py then remove-diacritics.py."""
    for a, b in [("\u015e", "\u0218"), ("\u015f", "\u0219"), ("\u0162", "\u021a"), ("\u0163", "\u021b")]:
        text = text.replace(a, b)
    for a, b in [("\u0218", "S"), ("\u0219", "s"), ("\u021a", "T"), ("\u021b", "t"), ("\u0102", "A"),
                 ("\u0103", "a"), ("\u00c2", "A"), ("\u00e2", "a"), ("\u00ce", "I"), ("\u00ee", "i")]:
        text = text.replace(a, b)
    return text


def ref_lowercase_and_remove_accent(line: str) -> str:
    """XLM's tools/lowercase_and_remove_accent.py on one line."""
    line = unicodedata.normalize("NFD", line.rstrip().lower())
    return "".join(c for c in line if unicodedata.category(c) != "Mn").lower()


# --- fastBPE applybpe: merges by rank (the codes file's order), "@@" on non-final pieces ----------
class FastBPE:
    def __init__(self, merges_path: str) -> None:
        with open(merges_path, encoding="utf-8") as handle:
            pairs = [tuple(line.split(" ")[:2]) for line in handle.read().split("\n") if line]
        self.codes = {}
        for pair in pairs:
            assert pair not in self.codes  # fastBPE asserts codes are unique
            self.codes[pair] = len(self.codes)

    def word(self, word: str) -> list[str]:
        subwords = list(word[:-1]) + [word[-1] + "</w>"]
        while len(subwords) > 1:
            best = None
            for i in range(len(subwords) - 1):
                rank = self.codes.get((subwords[i], subwords[i + 1]))
                if rank is not None and (best is None or rank < best[0]):
                    best = (rank, subwords[i], subwords[i + 1])
            if best is None:
                break
            merged, just_merged = [], False
            for i in range(len(subwords)):
                if i + 1 < len(subwords) and not just_merged and (subwords[i], subwords[i + 1]) == best[1:]:
                    merged.append(subwords[i] + subwords[i + 1])
                    just_merged = True
                else:
                    if not just_merged:
                        merged.append(subwords[i])
                    just_merged = False
            subwords = merged
        out = " ".join(s + "@@" for s in subwords)
        return out[: -len("</w>@@")].split(" ")  # fastBPE's output, "a@@ b@@ c"

    def line(self, line: str) -> list[str]:
        return [piece for w in line.split(" ") if w for piece in self.word(w)]


def fastbpe_to_vocab_tokens(pieces: list[str]) -> list[str]:
    """The converted vocabulary's spelling of fastBPE pieces: 'x@@' -> 'x', final 'x' -> 'x</w>'."""
    return [p[:-2] if p.endswith("@@") else p + "</w>" for p in pieces]


BPE = FastBPE(MERGES)
with open(VOCAB, encoding="utf-8") as _handle:
    VOCABULARY = json.load(_handle)


def reference_tokens(text: str, lang: str = "en", lowercase: bool = True) -> list[str]:
    """The original pipeline on `text`, line by line."""
    tokens = []
    for line in text.split("\n"):
        cleaned = ref_clean(line, lang)
        if lang == "ro":
            cleaned = ref_romanian(cleaned)
        tokenized = " ".join(ref_moses(cleaned, lang))
        if lowercase:
            tokenized = ref_lowercase_and_remove_accent(tokenized)
        tokens += fastbpe_to_vocab_tokens(BPE.line(tokenized))
    return tokens


def reference_ids(tokens: list[str]) -> list[int]:
    return [VOCABULARY.get(t, VOCABULARY["<unk>"]) for t in tokens]


@pytest.fixture(scope="module")
def original() -> XLMTokenizer:
    return XLMTokenizer.from_pretrained(VOCAB_DIR, preprocessing="original_xlm")


@pytest.fixture(scope="module")
def any_lang() -> XLMTokenizer:
    """No lang2id: every language is accepted."""
    return XLMTokenizer(VOCAB, MERGES, preprocessing="original_xlm")


@pytest.fixture(scope="module")
def default() -> XLMTokenizer:
    return XLMTokenizer.from_pretrained(VOCAB_DIR)


def check(tokenizer: XLMTokenizer, texts: list[str], lang: str) -> None:
    tokens = [tokenizer.tokenize(t, lang=lang) for t in texts]
    expected = [reference_tokens(t, lang, tokenizer.do_lowercase_and_remove_accent) for t in texts]
    for text, got, want in zip(texts, tokens, expected):
        assert got == want, text
    batch = tokenizer(texts, lang=lang, add_special_tokens=False, return_langs=False)["input_ids"]
    assert batch == [reference_ids(t) for t in expected]


def test_issue_cases_follow_the_original_and_not_transformers(original, default):
    transformers = pytest.importorskip("transformers")
    hf = transformers.XLMTokenizer.from_pretrained(VOCAB_DIR)
    for text in ISSUE_CASES:
        want = reference_tokens(text)
        assert original.tokenize(text) == want
        assert original.encode(text) == [0] + reference_ids(want) + [1]
        # the default stays transformers' tokenization, which differs on each of these
        assert default.tokenize(text) == hf.tokenize(text)
        assert default.encode(text) == hf.encode(text)
        assert default.tokenize(text) != want, text
    # what the issue describes, in words: Moses saw "OK." before "The", and "İ" is one letter
    assert "ok." not in " ".join(original.tokenize(ISSUE_CASES[0])).replace("</w>", "")
    assert original.tokenize("İstanbul")[0].startswith("i") and original.tokenize("İstanbul")[0] != "i</w>"


@pytest.mark.parametrize("lang", ["en", "fr", "de"])
def test_corpus_sentences_match_the_reference(original, lang):
    check(original, corpus(lang, 300), lang)


def test_varied_texts_match_the_reference(any_lang):
    texts = [t for t in VARIED + LANG_TEXTS + ISSUE_CASES if "<" not in t]  # no special tokens
    for lang in ("en", "fr", "de", "ro", "ru", "hi", "el"):
        check(any_lang, texts, lang)


def test_cased_model_matches_the_reference():
    cased = XLMTokenizer(VOCAB, MERGES, do_lowercase_and_remove_accent=False, preprocessing="original_xlm")
    texts = corpus("de", 80) + [t for t in VARIED + ISSUE_CASES if "<" not in t]
    for lang in ("de", "en"):
        check(cased, texts, lang)


def test_lines_are_tokenized_one_by_one(original):
    # Moses' last-word rule applies at every line end, as when the scripts read a file
    text = "He met Mr.\nSmith said so.\n\nA.\tB."
    assert original.tokenize(text) == [t for line in text.split("\n") for t in reference_tokens(line)]
    assert original.tokenize(text) != reference_tokens(text.replace("\n", " "))


def test_special_tokens_in_text_are_matched_as_written(original):
    # the original scripts never saw special tokens: ours are split off first, exactly as written,
    # and the text between them goes through the original pipeline
    text = "The <special1> sat on Mr. <special1>"
    got = original.tokenize(text)
    want = reference_tokens("The ") + ["<special1>"] + reference_tokens(" sat on Mr. ") + ["<special1>"]
    assert got == want
    assert original.tokenize("A <SPECIAL1> b") == reference_tokens("A <SPECIAL1> b")  # not a special token
    assert original.encode("<special1>", add_special_tokens=False) == [original.mask_token_id]


def test_offsets_mapping_keeps_the_ids(original):
    texts = corpus("fr", 30) + ISSUE_CASES
    aligned = original(texts, lang="fr", return_offsets_mapping=True, return_langs=False)
    assert aligned["input_ids"] == original(texts, lang="fr", return_langs=False)["input_ids"]


def test_option_round_trips_through_save_pretrained(original, default, tmp_path):
    original.save_pretrained(tmp_path / "original")
    default.save_pretrained(tmp_path / "default")
    saved = json.loads((tmp_path / "original" / "tokenizer_config.json").read_text())
    assert saved["preprocessing"] == "original_xlm"
    assert "preprocessing" not in json.loads((tmp_path / "default" / "tokenizer_config.json").read_text())
    reloaded = XLMTokenizer.from_pretrained(tmp_path / "original")
    assert reloaded.preprocessing == "original_xlm"
    assert reloaded.tokenize(ISSUE_CASES[0]) == reference_tokens(ISSUE_CASES[0])
    assert XLMTokenizer.from_pretrained(tmp_path / "default").preprocessing == "transformers"
    # transformers still reads the directory (the key is an unused init kwarg there)
    transformers = pytest.importorskip("transformers")
    assert transformers.XLMTokenizer.from_pretrained(tmp_path / "original").encode("a b") == default.encode("a b")


def test_unknown_preprocessing_is_refused():
    with pytest.raises(ValueError, match=r"preprocessing must be one of \['transformers', 'original_xlm'\]"):
        XLMTokenizer(VOCAB, MERGES, preprocessing="moses")


@pytest.mark.parametrize("lang, package", [("zh", "rjieba"), ("th", "pythainlp")])
def test_segmented_languages_lowercase_after_segmenting(any_lang, lang, package):
    pytest.importorskip(package)
    from xlm.tokenizer.languages import _pipeline

    segment = _pipeline(lang)._segment_zh if lang == "zh" else _pipeline(lang)._segment_th
    texts = ["中文：我们ＡＢＣ出了一个叛徒。北京大学（ＰＫＵ）成立于１８９８年！", "ภาษาไทย สวัสดีครับ ÉCOLE\u200bX"]
    for text in texts:
        # tokenize.sh: zh is segmented before the Moses scripts, th after them; no Moses tokenizer
        line = ref_clean(" ".join(segment(text)), lang) if lang == "zh" else " ".join(segment(ref_clean(text, lang)))
        want = fastbpe_to_vocab_tokens(BPE.line(ref_lowercase_and_remove_accent(line)))
        assert any_lang.tokenize(text, lang=lang) == want


# --- the transcriptions above against Perl itself (the scripts' substitution lines, verbatim) -----
PERL_REPLACE_UNICODE = r"""
while(<STDIN>) {
  s/，/,/g; s/。 */. /g; s/、/,/g; s/”/"/g; s/“/"/g; s/∶/:/g; s/：/:/g; s/？/\?/g; s/《/"/g; s/》/"/g;
  s/）/\)/g; s/！/\!/g; s/（/\(/g; s/；/;/g; s/１/1/g; s/」/"/g; s/「/"/g; s/０/0/g; s/３/3/g; s/２/2/g;
  s/５/5/g; s/６/6/g; s/９/9/g; s/７/7/g; s/８/8/g; s/４/4/g; s/． */. /g; s/～/\~/g; s/’/\'/g;
  s/…/\.\.\./g; s/━/\-/g; s/〈/\</g; s/〉/\>/g; s/【/\[/g; s/】/\]/g; s/％/\%/g;
  print $_;
}
"""
PERL_NORMALIZE = r"""
my $language = shift;
while(<STDIN>) {
    s/\r//g; s/\(/ \(/g; s/\)/\) /g; s/ +/ /g; s/\) ([\.\!\:\?\;\,])/\)$1/g; s/\( /\(/g; s/ \)/\)/g;
    s/(\d) \%/$1\%/g; s/ :/:/g; s/ ;/;/g;
    s/\`/\'/g; s/\'\'/ \" /g;
    s/„/\"/g; s/“/\"/g; s/”/\"/g; s/–/-/g; s/—/ - /g; s/ +/ /g; s/´/\'/g;
    s/([a-z])‘([a-z])/$1\'$2/gi; s/([a-z])’([a-z])/$1\'$2/gi; s/‘/\'/g; s/‚/\'/g; s/’/\"/g; s/''/\"/g;
    s/´´/\"/g; s/…/.../g;
    s/ « / \"/g; s/« /\"/g; s/«/\"/g; s/ » /\" /g; s/ »/\"/g; s/»/\"/g;
    s/ \%/\%/g; s/nº /nº /g; s/ :/:/g; s/ ºC/ ºC/g; s/ cm/ cm/g; s/ \?/\?/g; s/ \!/\!/g; s/ ;/;/g;
    s/, /, /g; s/ +/ /g;
    if ($language eq "en") { s/\"([,\.]+)/$1\"/g; }
    elsif ($language eq "cs" || $language eq "cz") { }
    else { s/,\"/\",/g; s/(\.+)\"(\s*[^<])/\"$1$2/g; }
    if ($language eq "de" || $language eq "es" || $language eq "cz" || $language eq "cs" || $language eq "fr") {
        s/(\d) (\d)/$1,$2/g;
    } else { s/(\d) (\d)/$1.$2/g; }
    print $_;
}
"""
# The pseudo-space rules hold no-break spaces in the script, written as spaces above for reading.
PERL_NORMALIZE = (PERL_NORMALIZE.replace("s/ « / ", f"s/{NBSP}«{NBSP}/ ").replace("s/« /", f"s/«{NBSP}/")
                  .replace("s/ » /", f"s/{NBSP}»{NBSP}/").replace("s/ »/", f"s/{NBSP}»/")
                  .replace(r"s/ \%/\%", f"s/{NBSP}\\%/\\%").replace("s/nº /", f"s/nº{NBSP}/")
                  .replace("s/ :/:/g; s/ ºC", f"s/{NBSP}:/:/g; s/{NBSP}ºC").replace("s/ cm/", f"s/{NBSP}cm/")
                  .replace(r"s/ \?/", f"s/{NBSP}\\?/").replace(r"s/ \!/", f"s/{NBSP}\\!/")
                  .replace("s/ ;/;/g;\n    s/, /", f"s/{NBSP};/;/g;\n    s/,{NBSP}/")
                  .replace("s/(\\d) (\\d)", f"s/(\\d){NBSP}(\\d)"))
PERL_REMOVE_NON_PRINTING = r"""
use utf8; binmode(STDIN, ":utf8"); binmode(STDOUT, ":utf8");
while (my $line = <STDIN>) { chomp($line); $line =~ s/\p{C}/ /g; print "$line\n"; }
"""

PERL_PROBES = [
    '"Hallo," sagte er. "Ende." Il a dit «\u00a0oui\u00a0» ; 1\u00a0000\u00a0€ ; 50\u00a0% ; nº\u00a07 ; what\u00a0? x\u00a0!',
    "``latex'' „low“ ‚x‘ don’t ‘q’ — dash – en ´´ a´b ... …",
    "(a) ( b ) c ) , d ( e ) . 5 % x : y ; 。  ． ｘ１２",
    'Er sagte "Ende.". Und "so." <b> ".<" ...", a,"b"',
    "tab\there\x7f zero\u200bwidth soft\u00adhyphen bom\ufeff \U000e0001",
]


def run_perl(program: str, lines: list[str], *args: str) -> list[str]:
    out = subprocess.run([PERL, "-e", program, *args], input="".join(line + "\n" for line in lines).encode("utf-8"),
                         capture_output=True, check=True).stdout.decode("utf-8")
    return out.split("\n")[:-1]


@needs_perl
@pytest.mark.parametrize("lang", ["en", "fr", "de", "cs", "ru"])
def test_perl_one_liners_agree_with_their_transcription(lang):
    lines = [line.replace("\r", "") for t in PERL_PROBES + VARIED + LANG_TEXTS + ISSUE_CASES + corpus(lang if lang in
             ("en", "fr", "de") else "en", 300) for line in t.split("\n")]
    replaced = run_perl(PERL_REPLACE_UNICODE, lines)
    assert replaced == [perl_bytes_sub(REPLACE_UNICODE, line) for line in lines]
    normalized = run_perl(PERL_NORMALIZE, replaced, lang)
    assert normalized == [perl_bytes_sub(normalize_rules(lang), line) for line in replaced]
    assert run_perl(PERL_REMOVE_NON_PRINTING, normalized) == [regex.sub(r"\p{C}", " ", line) for line in normalized]
    # and our implementation gives the same cleaned lines
    from xlm.tokenizer.original import _original_pipeline

    assert [_original_pipeline(lang).clean(line) for line in lines] == [ref_clean(line, lang) for line in lines]


@needs_perl
def test_bundled_perl_unicode_tables_are_perls():
    from xlm.tokenizer.perl_unicode import RANGES

    program = r"""
    for my $p (@ARGV) { my $re = qr/\p{$p}/; my $n = 0; my $sum = 0;
      for my $c (0..0x10FFFF) { next if $c >= 0xD800 && $c <= 0xDFFF;
        if (chr($c) =~ $re) { $n++; $sum = ($sum * 31 + $c) % 1000000007; } }
      print "$p $n $sum\n"; }"""
    out = subprocess.run([PERL, "-e", program, *RANGES], capture_output=True, text=True, check=True).stdout
    version = subprocess.run([PERL, "-e", "use Unicode::UCD; print Unicode::UCD::UnicodeVersion()"],
                             capture_output=True, text=True, check=True).stdout
    for line in out.strip().split("\n"):
        name, count, checksum = line.split()
        points = [c for pair in "".join(RANGES[name]).split() for c in
                  range(int(pair.split("-")[0], 16), int(pair.split("-")[1], 16) + 1)]
        total = 0
        for c in points:
            total = (total * 31 + c) % 1000000007
        if version.strip() != "14.0.0":  # another Perl, another Unicode: only the bulk must agree
            assert abs(len(points) - int(count)) < 0.05 * int(count), name
        else:
            assert (len(points), total) == (int(count), int(checksum)), name
