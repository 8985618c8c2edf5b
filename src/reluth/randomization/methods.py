"""Allocation methods, pure: permuted blocks from a secret seed, and Pocock–Simon minimization.

* Permuted blocks: each stratum's list is drawn from a keyed SHA-256 stream
  (``sha256(seed || stratum key || counter)``), so the same secret seed always gives the same
  list (a statistician can regenerate and prove it), while nobody without the seed can predict
  it. Block sizes are drawn at random among the allowed sizes (default 2 and 4).
* Minimization (Pocock & Simon 1975) with the range as imbalance measure, summed over the
  factors, and a random element: the arm that minimizes the total imbalance is chosen with
  probability ``p`` (default 0.8); ties are broken at random. The caller passes the random
  source (``secrets.SystemRandom()`` in the service) so that tests can seed it.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from reluth.errors import ValidationError
from reluth.i18n import N_


class KeyedStream:
    """A deterministic, unpredictable stream of integers from a secret seed and a label."""

    def __init__(self, seed: bytes, label: str) -> None:
        self._prefix = hashlib.sha256(seed + b"\x00" + label.encode("utf-8")).digest()
        self._counter = 0
        self._pool = b""

    def _bytes(self, n: int) -> bytes:
        while len(self._pool) < n:
            self._counter += 1
            self._pool += hashlib.sha256(self._prefix + self._counter.to_bytes(8, "big")).digest()
        out, self._pool = self._pool[:n], self._pool[n:]
        return out

    def randbelow(self, n: int) -> int:
        """Uniform in ``[0, n)`` (rejection sampling, no modulo bias)."""
        if n <= 0:
            raise ValueError("n must be positive")
        k = max(1, (n - 1).bit_length())
        while True:
            value = int.from_bytes(self._bytes((k + 7) // 8), "big") >> (8 * ((k + 7) // 8) - k)
            if value < n:
                return value


@dataclass(frozen=True)
class Slot:
    position: int  # 1-based, within the stratum
    block_no: int
    block_size: int
    arm: str


def validate_block_sizes(block_sizes: Sequence[int], arms: Sequence[str]) -> None:
    """Each block size holds the ``arms`` (the protocol's arm codes) equally often."""
    if not block_sizes:
        raise ValidationError("block_sizes", N_("no block size given"), N_("e.g. 2,4"))
    for size in block_sizes:
        if size <= 0 or size % len(arms) != 0:
            raise ValidationError(
                "block_sizes",
                f"{size} cannot hold a 1:1 allocation",
                f"positive multiples of {len(arms)}",
                code="block_not_balanced",
                params={"value": size, "arms": len(arms)},
            )


def permuted_blocks(
    seed: bytes,
    stratum_key: str,
    n: int,
    block_sizes: Sequence[int] = (2, 4),
    *,
    arms: Sequence[str],
) -> list[Slot]:
    """At least ``n`` slots for one stratum, in whole blocks, each block balanced 1:1."""
    validate_block_sizes(block_sizes, arms)
    if n <= 0:
        raise ValidationError(
            "per_stratum",
            f"{n} slots",
            "a positive number",
            code="greater_than",
            params={"value": n, "limit": 0},
        )
    stream = KeyedStream(seed, stratum_key)
    slots: list[Slot] = []
    block_no = 0
    while len(slots) < n:
        block_no += 1
        size = block_sizes[stream.randbelow(len(block_sizes))]
        block = [arm for arm in arms for _ in range(size // len(arms))]
        for i in range(len(block) - 1, 0, -1):  # Fisher–Yates with the keyed stream
            j = stream.randbelow(i + 1)
            block[i], block[j] = block[j], block[i]
        for arm in block:
            slots.append(Slot(len(slots) + 1, block_no, size, arm))
    return slots


def list_digest(stratum_key: str, slots: Sequence[Slot]) -> str:
    """SHA-256 of one stratum's list, to detect later edits of stored slots."""
    text = "\n".join(
        f"{stratum_key}|{s.position}|{s.block_no}|{s.block_size}|{s.arm}" for s in slots
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class MinimizationDecision:
    arm: str
    #: total imbalance if the patient were given each arm
    scores: dict[str, int]
    #: for each factor: the patient's level and the counts by arm before this patient
    counts: dict[str, dict[str, object]]
    preferred: tuple[str, ...]
    probability_preferred: Decimal
    draw: float
    tie: bool


def minimize(
    levels: Mapping[str, str],
    counts: Mapping[str, Mapping[str, int]],
    rng: random.Random,
    p: Decimal = Decimal("0.8"),
    *,
    arms: Sequence[str],
) -> MinimizationDecision:
    """Choose an arm for a patient with factor ``levels``.

    ``counts[factor][arm]`` is the number already allocated to ``arm`` among patients sharing
    this patient's level of ``factor``. The imbalance of a factor after a hypothetical
    allocation is the range (max - min) of its counts by arm; the score is the sum over factors.
    """
    if not Decimal("0.5") <= p <= 1:
        raise ValidationError(
            "p",
            f"{p}",
            "a probability between 0.5 and 1",
            code="out_of_range",
            params={"value": p, "lo": Decimal("0.5"), "hi": 1},
        )
    scores: dict[str, int] = {}
    for candidate in arms:
        total = 0
        for factor in levels:
            by_arm = counts.get(factor, {})
            after = [by_arm.get(a, 0) + (1 if a == candidate else 0) for a in arms]
            total += max(after) - min(after)
        scores[candidate] = total
    best = min(scores.values())
    preferred = tuple(a for a in arms if scores[a] == best)
    draw = rng.random()
    if len(preferred) == len(arms):
        arm = arms[min(int(draw * len(arms)), len(arms) - 1)]
        tie = True
    else:
        tie = False
        if draw < float(p):
            arm = preferred[min(int(draw / float(p) * len(preferred)), len(preferred) - 1)]
        else:
            others = [a for a in arms if a not in preferred]
            u = (draw - float(p)) / (1 - float(p))
            arm = others[min(int(u * len(others)), len(others) - 1)]
    snapshot = {
        f: {"level": levels[f], **{a: counts.get(f, {}).get(a, 0) for a in arms}} for f in levels
    }
    return MinimizationDecision(arm, scores, snapshot, preferred, p, draw, tie)
