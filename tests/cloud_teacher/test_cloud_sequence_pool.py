"""SequencePool: a session's own sequence and prefix, least recently used eviction, tenancy."""

from __future__ import annotations

from cloud_teacher.engines.llama_cpp.sequence_pool import SequencePool


def claim_and_fill(pool: SequencePool, owner: tuple[str, str], prompt: list[int]):
    """Claims a sequence for `prompt` and records it as evaluated, as the step loop does."""
    claim = pool.claim(owner=owner, prompt=prompt)
    assert claim is not None
    claim.sequence.tokens[:] = prompt
    pool.release(claim.sequence)
    return claim


def test_a_session_gets_its_own_sequence_back_with_the_shared_prefix() -> None:
    pool = SequencePool(2)
    first = claim_and_fill(pool, ("", "s1"), [1, 2, 3, 4])
    claim_and_fill(pool, ("", "s2"), [9, 9])
    again = pool.claim(owner=("", "s1"), prompt=[1, 2, 3, 5, 6])

    assert again is not None
    assert again.sequence is first.sequence
    assert (again.keep, again.evicted) == (3, False)
    assert again.sequence.tokens == [1, 2, 3]  # the rest is to be dropped


def test_the_last_prompt_token_is_always_evaluated_again() -> None:
    pool = SequencePool(1)
    claim_and_fill(pool, ("", "s1"), [1, 2, 3])
    again = pool.claim(owner=("", "s1"), prompt=[1, 2, 3])

    assert again is not None and again.keep == 2


def test_a_new_session_evicts_the_least_recently_used_idle_one() -> None:
    pool = SequencePool(2)
    old = claim_and_fill(pool, ("", "old"), [1, 2])
    recent = claim_and_fill(pool, ("", "recent"), [3, 4])
    new = pool.claim(owner=("", "new"), prompt=[1, 2, 5])

    assert new is not None
    assert new.sequence is old.sequence
    assert (new.keep, new.evicted) == (0, True)  # another session's tokens are never reused
    assert recent.sequence.owner == ("", "recent")


def test_busy_sequences_are_never_taken_and_a_session_runs_one_span_at_a_time() -> None:
    pool = SequencePool(2)
    busy = pool.claim(owner=("", "s1"), prompt=[1])
    assert busy is not None
    assert pool.claim(owner=("", "s1"), prompt=[1]) is None  # its own sequence is in use
    other = pool.claim(owner=("", "s2"), prompt=[1])
    assert other is not None and other.sequence is not busy.sequence
    assert pool.claim(owner=("", "s3"), prompt=[1]) is None  # all busy: wait


def test_the_same_session_id_of_another_tenant_shares_nothing() -> None:
    pool = SequencePool(1)
    claim_and_fill(pool, ("tenant-a", "s"), [1, 2, 3, 4])
    other = pool.claim(owner=("tenant-b", "s"), prompt=[1, 2, 3, 4, 5])

    assert other is not None
    assert (other.keep, other.evicted) == (0, True)
