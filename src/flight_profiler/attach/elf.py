"""Minimal ELF64 (little-endian) symbol lookup.

Reads only what symbol lookup needs: the ELF header, program headers (for the load
address), section headers, and the symbol/string tables. A 30 MB DWARF-rich
libpython therefore costs a few hundred KB of reads, not the whole file.
"""

from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO, Collection, Dict, FrozenSet, List, Tuple

ET_EXEC = 2
ET_DYN = 3

_SHT_SYMTAB = 2
_SHT_DYNSYM = 11
_PT_LOAD = 1
_SHN_UNDEF = 0
_STT_OBJECT = 1
_STT_FUNC = 2

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")


class ElfError(ValueError):
    """The file is not an ELF64 little-endian object we can read."""


@dataclass(frozen=True)
class ElfSymbol:
    name: str
    value: int  # st_value: link-time address (add the load bias for the runtime address)
    size: int
    kind: int  # STT_* (1 = object, 2 = function)


@dataclass(frozen=True)
class ElfImage:
    path: str
    e_type: int
    first_load_vaddr: int  # page-aligned p_vaddr of the lowest PT_LOAD segment
    symbols: Dict[str, ElfSymbol]

    def load_bias(self, offset0_map_start: int) -> int:
        """Runtime bias, given where the file's offset-0 mapping starts.

        ET_EXEC images are mapped at their link address, so the formula yields 0 for
        them too; ET_DYN (PIE, shared libraries) get start - lowest vaddr.
        """
        if self.e_type == ET_EXEC:
            return 0
        return offset0_map_start - self.first_load_vaddr


def _read_at(f: BinaryIO, offset: int, size: int) -> bytes:
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise ElfError("truncated ELF file")
    return data


def _name_offsets(strtab: bytes, names: Collection[str]) -> Dict[int, str]:
    """String-table offsets at which each wanted name (NUL-terminated) starts.

    Linkers merge string tails, so a name may start in the middle of a longer string;
    every occurrence of ``name\\0`` is a valid st_name. Matching offsets first and then
    scanning symbols by integer lookup avoids decoding every symbol name.
    """
    found: Dict[int, str] = {}
    for name in names:
        needle = name.encode() + b"\0"
        pos = strtab.find(needle)
        while pos != -1:
            found[pos] = name
            pos = strtab.find(needle, pos + 1)
    return found


def _scan_table(
    f: BinaryIO,
    sym_hdr: Tuple[int, ...],
    str_hdr: Tuple[int, ...],
    names: Collection[str],
    out: Dict[str, ElfSymbol],
) -> None:
    strtab = _read_at(f, str_hdr[4], str_hdr[5])
    wanted = _name_offsets(strtab, names)
    if not wanted:
        return
    entsize = sym_hdr[9] or _SYM.size
    if entsize != _SYM.size:
        raise ElfError(f"unexpected symbol entry size {entsize}")
    table = _read_at(f, sym_hdr[4], sym_hdr[5] - sym_hdr[5] % entsize)
    for st_name, st_info, _other, shndx, value, size in _SYM.iter_unpack(table):
        name = wanted.get(st_name)
        if name is None or shndx == _SHN_UNDEF or name in out:
            continue
        kind = st_info & 0xF
        if kind in (_STT_OBJECT, _STT_FUNC, 10):  # 10 = STT_GNU_IFUNC
            out[name] = ElfSymbol(name, value, size, kind)


def _parse(path: str, names: FrozenSet[str]) -> ElfImage:
    with open(path, "rb") as f:
        ehdr = _EHDR.unpack(_read_at(f, 0, _EHDR.size))
        ident = ehdr[0]
        if ident[:4] != b"\x7fELF":
            raise ElfError(f"{path} is not an ELF file")
        if ident[4] != 2 or ident[5] != 1:
            raise ElfError(f"{path} is not a little-endian ELF64 file")
        e_type, phoff, shoff = ehdr[1], ehdr[5], ehdr[6]
        phentsize, phnum, shentsize, shnum = ehdr[9], ehdr[10], ehdr[11], ehdr[12]

        loads: List[int] = []
        if phoff and phnum:
            raw = _read_at(f, phoff, phentsize * phnum)
            for i in range(phnum):
                ph = _PHDR.unpack_from(raw, i * phentsize)
                if ph[0] == _PT_LOAD:
                    loads.append(ph[3] & ~0xFFF)
        first_load = min(loads) if loads else 0

        symbols: Dict[str, ElfSymbol] = {}
        if shoff and shnum:
            raw = _read_at(f, shoff, shentsize * shnum)
            sections = [_SHDR.unpack_from(raw, i * shentsize) for i in range(shnum)]
            # .dynsym first: it is small and holds every exported C-API symbol;
            # .symtab (absent in stripped builds) only for names still missing.
            for wanted_type in (_SHT_DYNSYM, _SHT_SYMTAB):
                missing = names.difference(symbols)
                if not missing:
                    break
                for sh in sections:
                    if sh[1] == wanted_type and 0 < sh[6] < len(sections):
                        _scan_table(f, sh, sections[sh[6]], missing, symbols)
        return ElfImage(path, e_type, first_load, symbols)


@functools.lru_cache(maxsize=32)
def _parse_cached(path: str, names: FrozenSet[str], _identity: Tuple[int, ...]) -> ElfImage:
    return _parse(path, names)


def read_symbols(path: str, names: Collection[str]) -> ElfImage:
    """Look up ``names`` in ``path``'s .dynsym (and .symtab if present).

    Only defined symbols are returned; a name that is not found is simply absent from
    ``ElfImage.symbols``. Results are cached per file identity (device, inode, size,
    mtime), so repeated injections into the same interpreter do not re-read the file.
    Raises OSError if the file cannot be read, ElfError if it is not ELF64 LE.
    """
    st = os.stat(path)
    identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    return _parse_cached(path, frozenset(names), identity)
