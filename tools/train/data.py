"""KJV data for the MoR trainer: text from Debian's bible-kjv (`bible`),
split into train / validation by book, a byte-level BPE tokenizer trained
with Hugging Face `tokenizers`, and the token ids as uint16 .npy files.

  /usr/bin/python3 tools/train/data.py OUTDIR      (default build-kjv/data)

Writes OUTDIR/{train.txt,val.txt,tokenizer.json,train.npy,val.npy,books.json}.
Deterministic: same package, same files.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np

VOCAB = 2048
# Validation books (whole books, about 4% of the text): never seen in training.
VAL_BOOKS = ["Ruth", "Esther", "Jonah", "Galatians", "James", "1 John"]
EOT = "<|endoftext|>"


def read_kjv():
    """[(book, chapter, [(verse, text)])] in canonical order."""
    out = subprocess.run(["bible", "-l100000", "Gen1:1-Rev22:21"], check=True,
                         capture_output=True, text=True).stdout
    chapters = []
    for line in out.split("\n"):
        if not line.strip():
            continue
        m = re.match(r"^  (\d+) (.*)$", line)
        if m:
            chapters[-1][2].append((int(m.group(1)), m.group(2).strip()))
            continue
        m = re.match(r"^(.+) (\d+)$", line)
        if not m:
            raise SystemExit(f"unexpected line: {line!r}")
        chapters.append((m.group(1), int(m.group(2)), []))
    return chapters


def chapter_text(book, ch, verses):
    return f"{book} {ch}\n" + "".join(f"{v} {t}\n" for v, t in verses)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "build-kjv/data"
    os.makedirs(outdir, exist_ok=True)
    chapters = read_kjv()
    books = []
    for b, _, _ in chapters:
        if not books or books[-1] != b:
            books.append(b)
    assert len(books) == 66, len(books)
    assert all(v in books for v in VAL_BOOKS)
    train = [chapter_text(*c) for c in chapters if c[0] not in VAL_BOOKS]
    val = [chapter_text(*c) for c in chapters if c[0] in VAL_BOOKS]
    # Chapters are joined by a blank line; documents (books) would need EOT, but
    # the text is one continuous corpus, so a blank line is the only separator.
    train_txt, val_txt = "\n".join(train), "\n".join(val)
    with open(os.path.join(outdir, "train.txt"), "w") as f:
        f.write(train_txt)
    with open(os.path.join(outdir, "val.txt"), "w") as f:
        f.write(val_txt)

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=[EOT], show_progress=False,
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(train, trainer=tr)   # one chapter per item
    tok.save(os.path.join(outdir, "tokenizer.json"))
    assert tok.get_vocab_size() <= 65535
    for name, txt in (("train", train_txt), ("val", val_txt)):
        ids = tok.encode(txt).ids
        assert tok.decode(ids) == txt
        np.save(os.path.join(outdir, name + ".npy"), np.array(ids, dtype=np.uint16))
        print(f"{name}: {len(txt)} chars, {len(ids)} tokens ({len(txt)/len(ids):.2f} chars/token)")
    with open(os.path.join(outdir, "books.json"), "w") as f:
        json.dump({"train": [b for b in books if b not in VAL_BOOKS], "val": VAL_BOOKS,
                   "vocab_size": tok.get_vocab_size()}, f, indent=1)
    print("vocab", tok.get_vocab_size())


if __name__ == "__main__":
    main()
