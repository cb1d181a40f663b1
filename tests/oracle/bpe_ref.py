#!/usr/bin/python3
"""Independent reference for lorakit's byte-level BPE tokenizer (RoBERTa / GPT-2).

Written from GPT-2's published encoder algorithm (openai/gpt-2 src/encoder.py: bytes_to_unicode, the
pre-tokenization regex, BPE by lowest merge rank, all occurrences of the chosen pair merged left to
right) plus the RoBERTa conventions of Hugging Face's RobertaTokenizer(Fast) for roberta-base:
special tokens written in the text stay single tokens (<mask> strips the whitespace on its left),
<s> a </s> and <s> a </s></s> b </s>, truncation "longest_first", and RobertaTokenizerFast's
offsets with trim_offsets=True (code-point offsets; leading/trailing spaces of a token not included).

Uses only the Python standard library and the `regex` module (Debian python3-regex). Run it with
/usr/bin/python3.

usage: bpe_ref.py VOCAB_JSON MERGES_TXT < requests.jsonl > answers.jsonl
Each request line is a JSON object {"a": str, "b": str or null, "max_length": int (0 = none)};
each answer line is {"ids": [...encode ids...], "tokens": [[id, start, end], ...]} where "tokens"
are the tokens of "a" alone (no special tokens) with their offsets.
"""
import json
import sys

import regex

SPECIALS = ["<s>", "</s>", "<unk>", "<pad>", "<mask>"]
LSTRIP = {"<mask>"}
PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character table."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class Reference:
    def __init__(self, vocab_path, merges_path):
        with open(vocab_path, encoding="utf-8") as f:
            self.vocab = json.load(f)
        with open(merges_path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        assert lines[0].startswith("#version"), "merges file without header"
        self.rank = {}
        for r, line in enumerate(l for l in lines[1:] if l.strip()):
            first, second = line.split()
            self.rank[(first, second)] = r
        self.byte_char = bytes_to_unicode()
        self.cache = {}

    def bpe(self, token):
        """GPT-2's BPE: repeatedly merge every occurrence of the lowest-ranked adjacent pair."""
        if token in self.cache:
            return self.cache[token]
        word = list(token)
        while len(word) > 1:
            best = None
            for pair in zip(word, word[1:]):
                r = self.rank.get(pair)
                if r is not None and (best is None or r < best[0]):
                    best = (r, pair)
            if best is None:
                break
            first, second = best[1]
            merged = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self.cache[token] = word
        return word

    def split_specials(self, text):
        """[(is_special, piece, start_char, end_char)], leftmost-longest literal special matches."""
        out = []
        seg_start = 0
        i = 0
        n = len(text)
        while i < n:
            match = None
            for s in sorted(SPECIALS, key=len, reverse=True):
                if text.startswith(s, i):
                    match = s
                    break
            if match is None:
                i += 1
                continue
            start = i
            if match in LSTRIP:  # absorb the whitespace on its left
                while start > seg_start and text[start - 1].isspace():
                    start -= 1
            if start > seg_start:
                out.append((False, text[seg_start:start], seg_start, start))
            out.append((True, match, start, i + len(match)))
            i += len(match)
            seg_start = i
        if seg_start < n:
            out.append((False, text[seg_start:], seg_start, n))
        return out

    def tokens(self, text):
        """[(id, start, end)] of a text, no special tokens added."""
        result = []
        for is_special, piece, start, _end in self.split_specials(text):
            if is_special:
                result.append((self.vocab[piece], start, _end))
                continue
            for m in PATTERN.finditer(piece):
                chars = m.group(0)
                # one entry per UTF-8 byte: (byte-level char, index of the char it came from)
                byte_chars = []
                for k, ch in enumerate(chars):
                    for b in ch.encode("utf-8"):
                        byte_chars.append((self.byte_char[b], start + m.start() + k))
                sym = "".join(c for c, _ in byte_chars)
                pos = 0
                for t in self.bpe(sym):
                    first = byte_chars[pos][1]
                    last = byte_chars[pos + len(t) - 1][1]
                    pos += len(t)
                    s, e = first, last + 1
                    lead = len(t) - len(t.lstrip("\u0120"))
                    trail = len(t) - len(t.rstrip("\u0120"))
                    if lead:
                        s = min(s + lead, e)
                    if trail and e >= trail:
                        e = max(e - trail, s)
                    result.append((self.vocab.get(t, self.vocab["<unk>"]), s, e))
        return result

    def encode(self, a, b, max_length):
        ia = [t[0] for t in self.tokens(a)]
        ib = [t[0] for t in self.tokens(b)] if b is not None else None
        specials = 2 if ib is None else 4
        total = len(ia) + (len(ib) if ib is not None else 0) + specials
        if max_length and total > max_length:
            excess = total - max_length
            if ib is None:
                ia = ia[:len(ia) - excess]
            else:
                for _ in range(excess):
                    if len(ia) > len(ib):
                        ia.pop()
                    else:
                        ib.pop()
        cls, sep = self.vocab["<s>"], self.vocab["</s>"]
        if ib is None:
            return [cls] + ia + [sep]
        return [cls] + ia + [sep, sep] + ib + [sep]


def main():
    ref = Reference(sys.argv[1], sys.argv[2])
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        a, b, max_length = req["a"], req.get("b"), req.get("max_length", 0)
        answer = {"ids": ref.encode(a, b, max_length), "tokens": [list(t) for t in ref.tokens(a)]}
        out.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
