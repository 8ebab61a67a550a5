#!/usr/bin/python3
# make_tokenizer.py: trains the small byte-level BPE tokenizers the runtime tests
# use and writes their golden encodings (cases.txt) with the Hugging Face
# `tokenizers` package, so the C tests need no Python. Rerun only to regenerate:
#   /usr/bin/python3 -m pip install --break-system-packages tokenizers   # if missing
#   /usr/bin/python3 tests/data/tokenizer/make_tokenizer.py
#
# Outputs (next to this script):
#   tokenizer.json, cases.txt        GPT-2 style: ByteLevel pre-tokenizer, merges as [a, b]
#   llama3/{tokenizer.json,cases.txt} Split(Llama-3 regex) + ByteLevel(use_regex=false),
#                                     ignore_merges, merges as "a b" strings
#   qwen2/{tokenizer.json,cases.txt}  Split(Qwen2 regex: single digits) + ByteLevel
#   smollm/{tokenizer.json,cases.txt} Digits(individual) + ByteLevel(add_prefix_space=true),
#                                     and an lstrip added token [MASK]
#
# cases.txt holds one case per block, blocks separated by a blank line:
#   name: <identifier>
#   text: "<escaped>"      the input
#   ids: <id> <id> ...     what tokenizers' encode(text, add_special_tokens=False) gives
#   decoded: "<escaped>"   decode(ids, skip_special_tokens=False)
# Escapes inside the quotes: \\ \" \n \r \t and \xHH for any other byte below
# 0x20 or 0x7F; everything else (UTF-8 included) is written as is.
import json
import os
import random

import tokenizers
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

HERE = os.path.dirname(os.path.abspath(__file__))

LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
             r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
            r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# Training text: some Debian license texts plus lines written here, so merges
# also cover multi-byte characters.
EXTRA = """
Héllo wörld! Ça va? Déjà vu, naïve café, façade, über, Straße, smörgåsbord.
日本語のテキストです。東京は日本の首都です。中文文本，你好世界。
Привет, мир! Это тест. Ελληνικά: Γειά σου Κόσμε. עברית שלום. العربية مرحبا.
Numbers 0123456789, 3.14159, 2024-01-01, 1,000,000 and ٣٤٥ ३४५ ① ½ x² — ∑ ∫ √ ∞.
def main(argv):\n    return sum(x * 2 for x in argv)  # comment\n\tindented\twith\ttabs
Emoji 🙂 🚀 👩‍💻 🇯🇵 and symbols ©®™ €£¥ → ← ↑ ↓ “quotes” ‘single’ «guillemets».
I'm you're we've they'll he'd it's don't CAN'T WON'T I'M YOU'RE.
"""


def training_text():
    texts = []
    for name in ("GPL-3", "Apache-2.0", "MPL-2.0", "LGPL-2.1"):
        path = os.path.join("/usr/share/common-licenses", name)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                texts.extend(f.read().split("\n\n"))
    texts.extend(EXTRA.strip().split("\n") * 20)
    return texts


CASES = [
    ("empty", ""),
    ("ascii", "Hello, world!"),
    ("sentence", "The quick brown fox jumps over the lazy dog."),
    ("punctuation", "Wait... what?! (yes) [no] {maybe} <tag> a+b=c; x:y, \"quoted\" 'single' -- ~/path_to/file.txt"),
    ("digits", "In 2024, 3.14159 and 1,000,000 items cost $42.50 (12345678901) 0x1F 007"),
    ("spaces", "a  b   c    d     end   "),
    ("only_spaces", "     "),
    ("newlines", "line one\nline two\n\nline four\r\nwindows\r\n"),
    ("only_newline", "\n"),
    ("tabs", "\tindented\t\ttabs\t"),
    ("mixed_space", "  \n\t  x \n \u00a0y\u3000z\u2003 "),
    ("contractions", "I'm sure it's fine, you're right, we've done it, I'll go, he'd say, don't, IT'S LOUD, 'tis 'quoted'"),
    ("utf8", "héllo wörld — ∑ 日本語 🙂"),
    ("scripts", "Ελληνικά кириллица עברית العربية ३४५ ٣٤٥ ①②③ ½ x² café naïve"),
    ("combining", "e\u0301 n\u0303o a\u0308\u0304 \u1e9b\u0323"),
    ("emoji_zwj", "👩‍💻 🇯🇵 👍🏽 ❤️"),
    ("special", "Hello<|endoftext|>world"),
    ("special_twice", "<|endoftext|><|endoftext|>"),
    ("special_spaced", "text <|pad|> more <|endoftext|> end"),
    ("special_partial", "<|endoftext <|endoftext|"),
    ("special_at_ends", "<|endoftext|> start and end <|pad|>"),
    ("added_normal", "a<think>b <think> c"),
    ("added_lstrip", "mask   [MASK] here [MASK]"),
    ("code", "def f(x):\n    return x**2  # comment\n\nif __name__ == '__main__':\n\tprint(f(3))\n"),
    ("long_word", "supercalifragilisticexpialidocious" * 3),
    ("long_run", "a" * 300 + " " + "7" * 50 + " " + "!" * 40),
    ("control", "\x00\x01 bell\x07 del\x7f esc\x1b[0m"),
    ("crlf_spaces", "x \r\n \r\n\r\n  y\n\n\n"),
    ("apostrophes", "'s's 's ''ll '' rock'n'roll O'Neil's"),
    ("zyzzyva", "the zyzzyva and zyzzyvas"),
    # Characters newer than Unicode 14: Kaktovik and Garay numerals, Kawi digits,
    # Latin and Cyrillic letters of Unicode 15/16, and U+16FF4 (numeric to Rust only).
    ("new_unicode", "x\U0001D2C0\U0001D2C1y 9\U00010D40 \U00011F50\U00011F51a b\uA7CBc \u1C89d \U00016FF4 7"),
]


def license_case():
    path = "/usr/share/common-licenses/Apache-2.0"
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [("license_text", f.read()[:3000])]

# Random strings from a pool that mixes every character class the splitters
# care about, to compare our hand-written regexes against the real ones.
POOL = (list("abcXYZ019 '\t\n\r.,!?-_()\"") + [" ", " ", "  ", "'s", "'LL", "'ve", "\r\n"]
        + list("éöñßÆøЖжλΩאבعر日本語한글ไทย") + list("٣३①½²ⅫΣ") + list("—–…“”‘’«»€£©™→∑√∞")
        + ["\u00a0", "\u2003", "\u3000", "\u0085", "\u2028", "\x0b", "\x0c", "\x1c"]
        + ["\u0301", "\u0308", "\u200d", "\ufe0f", "\u200b"] + list("🙂🚀👩💻🇯🇵")
        + ["<|endoftext|>", "<|pad|>", "<think>", "[MASK]", "<|end", "|>"])


def fuzz_cases(n, seed):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        out.append(("fuzz_%03d" % i, "".join(rng.choice(POOL) for _ in range(rng.randint(1, 24)))))
    return out


def escape(s):
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\x%02X" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def write_cases(tok, path, cases):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("# cases.txt: golden encodings from tokenizers %s (make_tokenizer.py); do not edit.\n"
                % tokenizers.__version__)
        f.write("# Blocks of name:/text:/ids:/decoded: lines; see make_tokenizer.py for the escapes.\n\n")
        for name, text in cases:
            ids = tok.encode(text, add_special_tokens=False).ids
            decoded = tok.decode(ids, skip_special_tokens=False)
            f.write("name: %s\ntext: %s\nids: %s\ndecoded: %s\n\n"
                    % (name, escape(text), " ".join(map(str, ids)), escape(decoded)))


def save(tok_json, sub, cases):
    d = os.path.join(HERE, sub)
    os.makedirs(d, exist_ok=True)
    text = json.dumps(tok_json, ensure_ascii=False, indent=2)
    tok = Tokenizer.from_str(text)  # what the golden ids come from is what we save
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(text + "\n")
    write_cases(tok, os.path.join(d, "cases.txt"), cases)


def main():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(training_text(), trainer)
    tok.add_tokens([AddedToken("<think>", normalized=True)])
    base = json.loads(tok.to_str())
    cases = CASES + license_case() + fuzz_cases(150, 1234)

    # GPT-2 style, merges as the library writes them.
    save(base, ".", cases)

    # A vocab entry no merge sequence builds, to tell ignore_merges apart. It
    # takes the first id after the vocab and the added tokens move up one, as
    # Hugging Face requires ids to be dense (it renumbers added tokens otherwise).
    def with_zyzzyva(j):
        next_id = max(j["model"]["vocab"].values()) + 1
        j["model"]["vocab"]["Ġzyzzyva"] = next_id
        for t in j["added_tokens"]:
            if t["id"] >= next_id:
                t["id"] += 1
        return j

    # Llama-3 style, merges as "a b" strings.
    j = with_zyzzyva(json.loads(json.dumps(base)))
    j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_RE}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    j["model"]["ignore_merges"] = True
    j["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    save(j, "llama3", cases)

    # Qwen2 style: like Llama 3 but one digit per piece, merges honoured.
    j = with_zyzzyva(json.loads(json.dumps(base)))
    j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": QWEN2_RE}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
    j["model"]["ignore_merges"] = False
    save(j, "qwen2", cases)

    # SmolLM style (individual digits) with add_prefix_space on, and an added
    # token that strips the white space on its left. Both make decode(encode(s))
    # differ from s, so they live only in this variant: the others round-trip.
    j = json.loads(json.dumps(base))
    j["added_tokens"].append({"id": max(t["id"] for t in j["added_tokens"]) + 1, "content": "[MASK]",
                              "single_word": False, "lstrip": True, "rstrip": False,
                              "normalized": False, "special": True})
    j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}]}
    save(j, "smollm", cases)


if __name__ == "__main__":
    main()
