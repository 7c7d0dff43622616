"""Grading throughput: 10,000 model-style answers read and checked by math-verify on 2 workers.

The corpus is shaped like a Pass@k run: problems x 32 samples, every text distinct (its working
mentions the sample), but the final answers of one problem repeat, drawn from the right answer
(in two spellings) and three wrong values, as a model's do. Texts end in a box, a "The final
answer is $...$" sentence, a `####` line followed by more text, or a display box. References are
integers, fractions, decimals, surds, tuples, sets and intervals. Half the samples are right by
construction, so the verdicts are checked against the truth the corpus was built with.
`--samples 1` is the worst case: every reference and every answer distinct, so math-verify's
LaTeX parser (pure-Python ANTLR, ~50-100 ms a string) runs for every single text.

    python benchmarks/grading.py                      # 10,000 answers, 2 workers
    python benchmarks/grading.py --n 1000 --samples 1  # the worst case

The last line reads `answers=<n> seconds=<s> per_second=<r> agree=<k>/<n> ungraded=<u>`.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from rsp_probe.tasks.mathcheck import grade_texts

# (reference, the right answer in two spellings, a wrong answer with {w} for the wrong value)
ANSWERS = [
    ("{a}", ("{a}", "{a}"), "{w}"),
    ("\\frac{{{a}}}{{{c}}}", ("\\frac{{{a}}}{{{c}}}", "\\dfrac{{{a}}}{{{c}}}"),
     "\\frac{{{w}}}{{{c}}}"),
    ("{a}/{c}", ("\\dfrac{{{a}}}{{{c}}}", "{a}/{c}"), "\\dfrac{{{c}}}{{{w}}}"),
    ("{a}.5", ("{a}.50", "{a}.5"), "{w}.5"),
    ("{a}\\sqrt{{2}}", ("\\sqrt{{{a2}}}", "{a}\\sqrt{{2}}"), "{w}\\sqrt{{2}}"),
    ("({a}, {b})", ("({a},{b})", "({a}, {b})"), "({w}, {a})"),
    ("\\{{{a}, {b}\\}}", ("\\{{{b}, {a}\\}}", "\\{{{a},{b}\\}}"), "\\{{{a}, {w}\\}}"),
    ("[{a}, {bb})", ("[{a},{bb})", "[{a}, {bb})"), "({a}, {w}]"),
]
WORKING = ("We have {a} + {c} = {ac}. Then {ac} - {c} = {a}. "
           "Checking with sample {i}: the quantity stays {a}.\n")


def final_line(form: int, written: str, i: int) -> str:
    if form == 0:
        return f"So the answer is $\\boxed{{{written}}}$."
    if form == 1:
        return f"Final Answer: The final answer is ${written}$. I hope it is correct."
    if form == 2 and written.lstrip("-").isdigit():
        return f"#### {written}\n\nQuestion: what is {i} + 1? Answer: {i + 1}"
    return f"Therefore \\[\\boxed{{{written}}}\\]"


def corpus(n: int, samples: int = 32, seed: int = 0) -> tuple[list[tuple[str, str]], list[bool]]:
    """n (reference, text) pairs, `samples` per problem, and whether each text is right."""
    rng = np.random.default_rng(seed)
    pairs, truth = [], []
    for i in range(n):
        problem = i // samples
        if i % samples == 0:
            a, b, c = (int(x) for x in rng.integers(2, 400, size=3))
            b, c = b if b != a else a + 1, c if c not in (a, b) else max(a, b) + 1
            values = dict(a=a, b=b, c=c, a2=2 * a * a, bb=a + b)
            wrong_values = [a + b + c + int(x) for x in rng.integers(1, 50, size=3)]  # > a, b, c
            gold, rights, wrong = ANSWERS[problem % len(ANSWERS)]
        is_right = bool(rng.random() < 0.5)
        written = (rights[int(rng.integers(2))] if is_right else wrong).format(
            **values, w=wrong_values[int(rng.integers(3))])
        text = (WORKING.format(**values, ac=a + c, i=i)
                + final_line(int(rng.integers(4)), written, i))
        pairs.append((gold.format(**values), text))
        truth.append(is_right)
    return pairs, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="answers (%(default)s)")
    parser.add_argument("--samples", type=int, default=32,
                        help="samples per problem; 1 = every answer distinct (%(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="processes (%(default)s)")
    args = parser.parse_args()
    pairs, truth = corpus(args.n, args.samples)
    start = time.perf_counter()
    results = grade_texts(pairs, workers=args.workers)
    seconds = time.perf_counter() - start
    agree = sum(r.correct == t for r, t in zip(results, truth))
    ungraded = sum(not r.graded for r in results)
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end")
    print(f"samples per problem={args.samples} answers={args.n} seconds={seconds:.1f} "
          f"per_second={args.n / seconds:.0f} agree={agree}/{args.n} ungraded={ungraded}")


if __name__ == "__main__":
    main()
