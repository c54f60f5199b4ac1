"""The seccomp program jail.py assembles, run by a small classic-BPF interpreter for each ABI (no kernel needed)."""

from __future__ import annotations

import errno
import struct

import pytest

from evoagent import jail

ALLOW, DENY = 0x7FFF0000, 0x00050000 | errno.EPERM
ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
NR = {"x86_64": {"chmod": 90, "fchmodat": 268, "utimensat": 280, "fsetxattr": 190, "socket": 41, "socketpair": 53,
                 "openat": 257, "read": 0, "connect": 42, "mknodat": 259, "io_uring_setup": 425, "fchmodat2": 452},
      "aarch64": {"fchmodat": 53, "utimensat": 88, "fsetxattr": 7, "socket": 198, "socketpair": 199, "openat": 56,
                  "read": 63, "connect": 203, "mknodat": 33, "io_uring_setup": 425, "fchmodat2": 452}}
AF_UNIX, AF_INET, SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_CLOEXEC = 1, 2, 1, 2, 5, 0o2000000


def run(program: list[tuple[int, int, int, int]], nr: int, arch: int, *args: int) -> int:
    """Classic BPF over struct seccomp_data, the opcodes the filter uses."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        if code == 0x20:  # ld [k]
            acc = struct.unpack_from("=I", data, k)[0]
        elif code == 0x54:  # and k
            acc &= k
        elif code in (0x15, 0x35):  # jeq / jge k
            hit = acc == k if code == 0x15 else acc >= k
            pc += jt if hit else jf
        elif code == 0x06:  # ret k
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
        pc += 1


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_metadata_syscalls_and_unix_sockets_are_refused_and_ordinary_calls_pass(machine: str) -> None:
    program, nr, arch = jail.seccomp_program(machine), NR[machine], ARCH[machine]
    for name in ("fchmodat", "utimensat", "fsetxattr", "io_uring_setup", "fchmodat2", *(
            ["chmod"] if machine == "x86_64" else [])):
        assert run(program, nr[name], arch) == DENY, name
    assert run(program, nr["socket"], arch, AF_UNIX, SOCK_STREAM) == DENY
    assert run(program, nr["socket"], arch, AF_INET, SOCK_STREAM) == ALLOW
    assert run(program, nr["socketpair"], arch, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC) == ALLOW
    assert run(program, nr["socketpair"], arch, AF_UNIX, SOCK_SEQPACKET) == ALLOW
    assert run(program, nr["socketpair"], arch, AF_UNIX, SOCK_DGRAM) == DENY  # it could sendto a path
    for name in ("openat", "read", "connect", "mknodat"):  # FIFOs are opened, read and made as usual
        assert run(program, nr[name], arch) == ALLOW, name


def test_other_abis_are_refused_on_x86_64() -> None:
    program = jail.seccomp_program("x86_64")
    assert run(program, 15, 0x40000003) == DENY  # i386 through int 0x80 (chmod there is 15)
    assert run(program, 0x40000000 | 90, ARCH["x86_64"]) == DENY  # x32's chmod
