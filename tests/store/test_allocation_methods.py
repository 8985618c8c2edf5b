"""The pure allocation methods: permuted blocks from a secret seed, and minimization."""

from __future__ import annotations

import random
import secrets
from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reluth.errors import ValidationError
from reluth.protocol.definition import load_protocol
from reluth.randomization.methods import (
    KeyedStream,
    list_digest,
    minimize,
    permuted_blocks,
)

#: The protocol's arm codes (the methods take them from the caller).
ARMS = load_protocol().arm_codes


@settings(max_examples=60, deadline=None)
@given(
    seed=st.binary(min_size=16, max_size=32),
    n=st.integers(1, 80),
    sizes=st.sampled_from([(2,), (2, 4), (4, 6), (2, 4, 6)]),
)
def test_blocks_are_complete_balanced_and_bounded(
    seed: bytes, n: int, sizes: tuple[int, ...]
) -> None:
    slots = permuted_blocks(seed, "DCge18-PRrad-GFRge60-ITno", n, sizes, arms=ARMS)
    assert len(slots) >= n
    assert [s.position for s in slots] == list(range(1, len(slots) + 1))
    diff = 0
    for block_no in sorted({s.block_no for s in slots}):
        block = [s for s in slots if s.block_no == block_no]
        assert len(block) == block[0].block_size and block[0].block_size in sizes
        assert Counter(s.arm for s in block) == {a: len(block) // 2 for a in ARMS}
    for s in slots:  # the running imbalance never exceeds half the largest block
        diff += 1 if s.arm == ARMS[0] else -1
        assert abs(diff) <= max(sizes) // 2
    assert diff == 0


def test_same_seed_same_list_other_seed_or_stratum_other_list() -> None:
    seed = b"a secret seed of the statistician"
    a = permuted_blocks(seed, "S1", 200, arms=ARMS)
    assert a == permuted_blocks(seed, "S1", 200, arms=ARMS)
    assert [s.arm for s in a] != [s.arm for s in permuted_blocks(seed, "S2", 200, arms=ARMS)]
    assert [s.arm for s in a] != [s.arm for s in permuted_blocks(seed + b"!", "S1", 200, arms=ARMS)]
    assert list_digest("S1", a) != list_digest("S2", a)
    assert {s.block_size for s in a} == {2, 4}  # both sizes are used


def test_keyed_stream_is_uniform() -> None:
    stream = KeyedStream(b"seed" * 4, "x")
    counts = Counter(stream.randbelow(6) for _ in range(6000))
    chi2 = sum((c - 1000) ** 2 / 1000 for c in counts.values())
    assert set(counts) == set(range(6)) and chi2 < 20.5  # 5 df, p ~ 0.001


def test_odd_block_sizes_are_refused() -> None:
    with pytest.raises(ValidationError, match="block_sizes"):
        permuted_blocks(b"x" * 16, "S", 10, (3,), arms=ARMS)


# ---------------------------------------------------------------------------------- minimization


def _simulate(seed: int, p: Decimal, n: int = 1000, centres: int = 10) -> tuple[int, int, float]:
    """Max |experimental - control| over all factor levels, the same for complete
    randomization of the same patients, and the share of decisions following the preferred arm."""
    patients = random.Random(seed)
    rng = random.Random(seed + 1)
    coin = random.Random(seed + 2)
    counts: dict[tuple[str, str], dict[str, int]] = {}
    plain: dict[tuple[str, str], Counter[str]] = {}
    followed = decided = 0
    for _ in range(n):
        levels = {f"factor{j}": patients.choice("ab") for j in range(4)}
        levels["centre"] = f"C{patients.randrange(centres):02d}"
        snapshot = {
            f: dict(counts.get((f, lv), dict.fromkeys(ARMS, 0))) for f, lv in levels.items()
        }
        d = minimize(levels, snapshot, rng, p, arms=ARMS)
        if not d.tie:
            decided += 1
            followed += d.arm in d.preferred
        other = coin.choice(ARMS)
        for f, lv in levels.items():
            counts.setdefault((f, lv), dict.fromkeys(ARMS, 0))[d.arm] += 1
            plain.setdefault((f, lv), Counter())[other] += 1
    worst = max(abs(v[ARMS[0]] - v[ARMS[1]]) for v in counts.values())
    worst_plain = max(abs(v[ARMS[0]] - v[ARMS[1]]) for v in plain.values())
    return worst, worst_plain, followed / decided


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_minimization_keeps_every_factor_level_balanced(seed: int) -> None:
    # 1 000 patients, 4 binary factors + 10 centres, p = 0.8. Over 40 simulated trials the
    # worst level imbalance ranged 3..13 (complete randomization: 15..66), hence the bound 15.
    worst, worst_plain, followed = _simulate(seed, Decimal("0.8"))
    assert worst <= 15
    assert worst < worst_plain
    assert abs(followed - 0.8) < 0.05  # the random element works as specified


def test_minimization_is_not_deterministic() -> None:
    levels = {"factor0": "a", "factor1": "b"}
    balanced = {"factor0": dict.fromkeys(ARMS, 3), "factor1": dict.fromkeys(ARMS, 3)}
    tilted = {"factor0": {ARMS[0]: 5, ARMS[1]: 3}, "factor1": dict.fromkeys(ARMS, 3)}
    system = secrets.SystemRandom()
    seen_tie = Counter(minimize(levels, balanced, system, arms=ARMS).arm for _ in range(200))
    seen_tilt = Counter(minimize(levels, tilted, system, arms=ARMS).arm for _ in range(400))
    assert set(seen_tie) == set(ARMS)
    assert set(seen_tilt) == set(ARMS) and seen_tilt[ARMS[1]] > seen_tilt[ARMS[0]]


def test_minimization_records_scores_and_p_one_is_deterministic() -> None:
    levels = {"factor0": "a"}
    d = minimize(
        levels, {"factor0": {ARMS[0]: 2, ARMS[1]: 0}}, random.Random(0), Decimal(1), arms=ARMS
    )
    assert d.arm == ARMS[1] and d.scores == {ARMS[0]: 3, ARMS[1]: 1}
    assert d.counts["factor0"] == {"level": "a", ARMS[0]: 2, ARMS[1]: 0}
    with pytest.raises(ValidationError):
        minimize(levels, {}, random.Random(0), Decimal("0.3"), arms=ARMS)
