"""Independent SQuAD v1.1 scorer, written from the official evaluation's published definition
(evaluate-v1.1.py): normalise (lower-case, drop string.punctuation, the words a/an/the → space,
collapse whitespace), exact match and bag-of-tokens F1, each the max over the gold answers,
questions without a prediction scoring 0, averages in percent.

usage: squad_eval_ref.py DATA.json PREDICTIONS.json   (predictions: {"question id": "answer text"})
prints {"exact_match": ..., "f1": ..., "total": ...}
"""
import collections
import json
import re
import string
import sys


def normalize(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def f1(pred, gold):
    p, g = normalize(pred).split(), normalize(gold).split()
    same = sum((collections.Counter(p) & collections.Counter(g)).values())
    if same == 0:
        return 0.0
    prec, rec = same / len(p), same / len(g)
    return 2 * prec * rec / (prec + rec)


def main():
    data = json.load(open(sys.argv[1], encoding="utf-8"))["data"]
    preds = json.load(open(sys.argv[2], encoding="utf-8"))
    em = f = 0.0
    total = 0
    for art in data:
        for par in art["paragraphs"]:
            for qa in par["qas"]:
                total += 1
                if qa["id"] not in preds:
                    continue
                golds = [a["text"] for a in qa["answers"]]
                em += max(float(normalize(preds[qa["id"]]) == normalize(g)) for g in golds)
                f += max(f1(preds[qa["id"]], g) for g in golds)
    print(json.dumps({"exact_match": 100.0 * em / total, "f1": 100.0 * f / total, "total": total}))


if __name__ == "__main__":
    main()
