"""
The security arithmetic of committees (issue 19, ``docs/consensus.md``):
for a committee of C{c} members drawn at random from a network of C{n}
masternodes of which a fraction C{f} is Byzantine, the probability that
the committee holds a third of its members or more -- the point from
which its two-thirds quorums no longer intersect in an honest member, so
that it could commit (or finalize) two conflicting things.

Drawing without replacement from the network is hypergeometric; from an
unbounded network (or by stake, one coin at a time) it is binomial.  Both
are computed exactly with integers (C{math.comb}) and printed per epoch
and per year of epochs.

    python scripts/committee_odds.py
    python scripts/committee_odds.py --network 3500 --epoch-seconds 6000
"""

from __future__ import annotations

import argparse
import math
from fractions import Fraction


def third_or_more(c: int) -> int:
    """
    The smallest number of Byzantine members that is a third or more of
    a committee of C{c}: with it, two quorums of two thirds need not share
    an honest member.
    """
    return -(-c // 3)


def binomial_tail(c: int, f: Fraction, k: int) -> Fraction:
    """
    P(X >= k) for X ~ Binomial(C{c}, C{f}), exactly.
    """
    return sum((math.comb(c, i) * f ** i * (1 - f) ** (c - i)
                for i in range(k, c + 1)), Fraction(0))


def hypergeometric_tail(n: int, bad: int, c: int, k: int) -> Fraction:
    """
    P(X >= k) for C{c} members drawn without replacement from C{n} of
    which C{bad} are Byzantine, exactly.
    """
    total = math.comb(n, c)
    return Fraction(sum(math.comb(bad, i) * math.comb(n - bad, c - i)
                        for i in range(k, min(c, bad) + 1)), total)


def per_year(p: Fraction | float, epochs: float) -> float:
    """
    The probability that at least one of C{epochs} independent epochs
    draws a bad committee, each with probability C{p}.
    """
    return -math.expm1(epochs * math.log1p(-float(p))) if p < 1 else 1.0


def table(sizes: list[int], fractions: list[float], network: int,
          epochs_per_year: float) -> list[str]:
    """
    Markdown rows: per committee size and Byzantine fraction, the
    probability per epoch (hypergeometric from C{network}, and binomial)
    and per year of epochs (hypergeometric).
    """
    head = ["| committee | " + " | ".join(
        f"f = {f:g}: per epoch (per year)" for f in fractions) + " |",
        "|---:|" + "---:|" * len(fractions)]
    rows = []
    for c in sizes:
        k = third_or_more(c)
        cells = []
        for f in fractions:
            bad = round(f * network)
            p = hypergeometric_tail(network, bad, c, k) if c <= network \
                else binomial_tail(c, Fraction(bad, network), k)
            cells.append(f"{float(p):.1e} ({per_year(p, epochs_per_year):.1e})")
        rows.append(f"| {c} (≥ {k} bad) | " + " | ".join(cells) + " |")
    return head + rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", type=int, default=3500,
                        help="masternodes in the network (Dash: ~3,500)")
    parser.add_argument("--sizes", default="10,20,30,50,100,200,400")
    parser.add_argument("--fractions", default="0.1,0.2,0.25,0.3")
    parser.add_argument("--epoch-seconds", type=float, default=6000.0,
                        help="seconds per committee epoch (mainnet: 10 "
                        "blocks of 600 s)")
    args = parser.parse_args()
    epochs = 365.25 * 86400 / args.epoch_seconds
    print(f"network {args.network} masternodes, {epochs:.0f} epochs a year")
    for line in table([int(s) for s in args.sizes.split(",")],
                      [float(f) for f in args.fractions.split(",")],
                      args.network, epochs):
        print(line)


if __name__ == "__main__":
    main()
