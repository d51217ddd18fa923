"""Which tar members an unpacker may create."""

from __future__ import annotations

import pytest

from kiln.core.artifacts.unpack_rules import Budget, MemberType, RawMember, check_member
from kiln.errors import IntegrityError


def judge(raw: RawMember, regular: set[str] | None = None, budget: Budget | None = None) -> object:
    return check_member(raw, regular_files=regular or set(), budget=budget or Budget())


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (RawMember("/etc/passwd", b"0", 0o644, 1, ""), "absolute path"),
        (RawMember("app/../../etc/passwd", b"0", 0o644, 1, ""), "'..'"),
        (RawMember("app/x", b"0", 0o4755, 1, ""), "setuid or setgid"),
        (RawMember("app/x", b"0", 0o2755, 1, ""), "setuid or setgid"),
        (RawMember("dev/sda", b"4", 0o644, 0, ""), "device node"),
        (RawMember("dev/tty", b"3", 0o644, 0, ""), "device node"),
        (RawMember("app/fifo", b"6", 0o644, 0, ""), "FIFO"),
        (RawMember("app/l", b"2", 0o777, 0, "/etc/shadow"), "absolute or empty"),
        (RawMember("app/l", b"2", 0o777, 0, "../../etc"), "leaves the tree"),
        (RawMember("app/h", b"1", 0o644, 0, "etc/passwd"), "not an earlier regular file"),
        (RawMember("app/.wh.x", b"0", 0o644, 0, ""), "whiteout"),
        (RawMember("app/x", b"K", 0o644, 0, ""), "unsupported tar type"),
    ],
)
def test_unsafe_members_are_refused_with_the_reason(raw: RawMember, why: str) -> None:
    with pytest.raises(IntegrityError, match="unsafe layer member") as info:
        judge(raw)
    assert why in str(info.value)
    assert raw.name in str(info.value)


def test_safe_members_pass_typed() -> None:
    member = judge(RawMember("./app/run.sh", b"0", 0o755, 3, ""))
    assert member is not None
    assert (member.path, member.type, member.executable) == (  # type: ignore[attr-defined]
        "app/run.sh",
        MemberType.FILE,
        True,
    )
    link = judge(RawMember("app/l", b"2", 0o777, 0, "../deps/x"))
    assert link.target == "../deps/x"  # type: ignore[attr-defined]
    hard = judge(RawMember("app/h", b"1", 0o644, 0, "app/x"), regular={"app/x"})
    assert hard.type is MemberType.HARDLINK  # type: ignore[attr-defined]
    assert judge(RawMember("./", b"5", 0o755, 0, "")) is None


def test_expansion_beyond_the_limit_is_refused() -> None:
    budget = Budget(max_bytes=100)
    judge(RawMember("a", b"0", 0o644, 60, ""), budget=budget)
    with pytest.raises(IntegrityError, match="exceed 100 bytes"):
        judge(RawMember("b", b"0", 0o644, 60, ""), budget=budget)


def test_too_many_entries_are_refused() -> None:
    budget = Budget(max_entries=2)
    judge(RawMember("a", b"5", 0o755, 0, ""), budget=budget)
    judge(RawMember("b", b"5", 0o755, 0, ""), budget=budget)
    with pytest.raises(IntegrityError, match="more than 2 entries"):
        judge(RawMember("c", b"5", 0o755, 0, ""), budget=budget)
