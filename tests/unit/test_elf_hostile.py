"""attach/elf on a file the target's user may have built: sizes from the file never decide what we allocate.

As root the client reads the libpython a target maps (through /proc/<pid>/map_files); a user can run
their own. A section claiming 2**40 bytes made read() ask for a terabyte (MemoryError, a traceback),
and entry sizes below an entry's raised struct.error.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable

import pytest

from flight_profiler.attach import elf

LIBPYTHON = sorted(
    glob.glob("/root/.pyenv/versions/3.1*/lib/libpython3.*.so.1.0")
    + glob.glob("/usr/lib/x86_64-linux-gnu/libpython3.*.so.1.0")
)


def _header(data: bytearray) -> list[int]:
    return list(elf._EHDR.unpack_from(data, 0))


def _huge_tables(data: bytearray) -> None:
    ehdr = _header(data)
    shoff, shentsize, shnum = ehdr[6], ehdr[11], ehdr[12]
    for index in range(shnum):
        at = shoff + index * shentsize
        section = list(elf._SHDR.unpack_from(data, at))
        if section[1] in (2, 3, 11):  # symtab, strtab, dynsym
            section[5] = 1 << 40
            elf._SHDR.pack_into(data, at, *section)


def _tiny_entries(data: bytearray) -> None:
    ehdr = _header(data)
    ehdr[9], ehdr[10] = 1, 100  # 100 program headers of 1 byte each
    elf._EHDR.pack_into(data, 0, *ehdr)


@pytest.mark.skipif(not LIBPYTHON, reason="no shared libpython here")
@pytest.mark.parametrize("damage", [_huge_tables, _tiny_entries])
def test_a_hostile_header_is_an_elf_error(damage: Callable[[bytearray], None], tmp_path: object) -> None:
    with open(LIBPYTHON[0], "rb") as fh:
        data = bytearray(fh.read())
    damage(data)
    path = os.path.join(str(tmp_path), "libpython-hostile.so")
    with open(path, "wb") as fh:
        fh.write(data)
    elf.clear_cache()
    with pytest.raises(elf.ElfError):
        elf.read_symbols(path, ["Py_Initialize", "PyGILState_Ensure"])
