"""The key file, key checks and per-caller limits, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_teacher.access.keys import Caller, KeyRing
from cloud_teacher.access.quota import CallerLimits
from cloud_teacher.errors import ConfigError, OverloadedError, QuotaExceededError

ALICE = "alice-0123456789abcdef"
BOB = "bob-fedcba9876543210"


def ring(tmp_path: Path, text: str) -> KeyRing:
    path = tmp_path / "keys.txt"
    path.write_text(text)
    return KeyRing.from_file(path)


def test_keys_with_labels_comments_and_blank_lines(tmp_path: Path) -> None:
    keys = ring(tmp_path, f"# ops keys\n\nalice:{ALICE}\n  {BOB}  \n")
    assert len(keys) == 2
    alice, bob = keys.authenticate(ALICE), keys.authenticate(BOB)
    assert alice is not None and bob is not None
    assert alice.name == "alice" and bob.name == bob.tenant[:8]
    assert alice.tenant != bob.tenant and ALICE not in alice.tenant
    assert keys.authenticate("alice") is None and keys.authenticate("") is None
    assert keys.authenticate(f"alice:{ALICE}") is None


def test_a_tenant_depends_on_the_key_not_its_label(tmp_path: Path) -> None:
    first = ring(tmp_path, f"alice:{ALICE}\n").authenticate(ALICE)
    renamed = ring(tmp_path, f"ops:{ALICE}\n").authenticate(ALICE)
    assert first is not None and renamed is not None
    assert first.tenant == renamed.tenant


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# only comments\n", "holds no keys"),
        ("short\n", "line 1: a key must be at least 16 characters"),
        (f"bad label!:{ALICE}\n", "line 1: the label 'bad label!'"),
    ],
)
def test_a_bad_key_file_says_which_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(")):
        ring(tmp_path, text)


def test_a_failed_reload_keeps_the_previous_keys(tmp_path: Path) -> None:
    keys = ring(tmp_path, f"{ALICE}\n")
    keys.path.write_text("short\n")
    keys.reload()
    assert keys.authenticate(ALICE) is not None
    keys.path.write_text(f"{BOB}\n")
    keys.reload()
    assert keys.authenticate(ALICE) is None and keys.authenticate(BOB) is not None


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_quota_is_a_sliding_minute_with_an_exact_retry_delay() -> None:
    clock = Clock()
    limits = CallerLimits(tokens_per_minute=10, max_calls=None, clock=clock)
    limits.charge("a", 6)
    clock.now += 20
    limits.charge("a", 6)
    limits.check_quota("b")  # another tenant is not affected
    with pytest.raises(QuotaExceededError) as raised:
        limits.check_quota("a")
    # 12 used, 10 allowed: the first 6 must leave the window, 40 s from now.
    assert raised.value.retry_after_s == pytest.approx(40)
    clock.now += 40
    limits.check_quota("a")


def test_concurrent_calls_are_capped_per_tenant() -> None:
    limits = CallerLimits(tokens_per_minute=None, max_calls=1)
    alice, bob = Caller(tenant="a", name="alice"), Caller(tenant="b", name="bob")
    with (
        limits.admit(alice),
        limits.admit(bob),
        pytest.raises(OverloadedError, match="1 calls in progress"),
        limits.admit(alice),
    ):
        pass
    with limits.admit(alice):
        pass


def test_without_keys_only_max_pending_bounds_concurrent_calls() -> None:
    limits = CallerLimits(tokens_per_minute=None, max_calls=1)
    anonymous = Caller(tenant="", name="")
    with limits.admit(anonymous), limits.admit(anonymous):
        pass
