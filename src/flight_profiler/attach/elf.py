"""Minimal ELF64 (little-endian) symbol lookup.

Reads only what symbol lookup needs: the ELF header, program headers (for the load
address), section headers, and the symbol/string tables. A 30 MB DWARF-rich
libpython therefore costs a few hundred KB of reads, not the whole file.
"""

from __future__ import annotations

import os
import struct
import threading
from collections import OrderedDict

TYPE_CHECKING = False
if TYPE_CHECKING:  # names for mypy only: typing costs the first attach's start-up ~3 ms
    from typing import BinaryIO, Collection, Dict, FrozenSet, List, NamedTuple, Tuple
else:
    from flight_profiler.named import NamedTuple

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


class ElfSymbol(NamedTuple):
    name: str
    value: int  # st_value: link-time address (add the load bias for the runtime address)
    size: int
    kind: int  # STT_* (1 = object, 2 = function)


class ElfImage(NamedTuple):
    path: str
    e_type: int
    first_load_vaddr: int  # page-aligned p_vaddr of the lowest PT_LOAD segment
    symbols: Dict[str, ElfSymbol]
    segments: Tuple[Tuple[int, int, int], ...] = ()  # PT_LOAD (p_vaddr, p_offset, p_filesz): where bytes lie

    def file_offset(self, vaddr: int) -> int | None:
        """Where the byte the image loads at link-time address ``vaddr`` lies in the file, if it does."""
        for start, offset, size in self.segments:
            if start <= vaddr < start + size:
                return offset + vaddr - start
        return None

    def load_bias(self, offset0_map_start: int) -> int:
        """Runtime bias, given where the file's offset-0 mapping starts.

        ET_EXEC images are mapped at their link address, so the formula yields 0 for
        them too; ET_DYN (PIE, shared libraries) get start - lowest vaddr.
        """
        if self.e_type == ET_EXEC:
            return 0
        return offset0_map_start - self.first_load_vaddr


# Most bytes one header table or symbol/string table may take: libpython's largest (.symtab of a
# debug build) is a few MB. The sizes come from the file, which may be the target user's own build:
# 2**40 made read() ask for a terabyte (MemoryError, a traceback as root), 65535 x 65535 program
# headers for 4 GB.
MAX_TABLE = 256 << 20


def _read_at(f: BinaryIO, offset: int, size: int) -> bytes:
    if size > MAX_TABLE or offset + size > os.fstat(f.fileno()).st_size:
        raise ElfError(
            "a table of %d bytes at offset %d: past the file's end or over %d MiB" % (size, offset, MAX_TABLE >> 20)
        )
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
    proofs: List[Tuple[int, bytes]],
) -> None:
    strtab = _read_at(f, str_hdr[4], str_hdr[5])
    wanted = _name_offsets(strtab, names)
    if not wanted:
        return
    entsize = sym_hdr[9] or _SYM.size
    if entsize != _SYM.size:
        raise ElfError(f"unexpected symbol entry size {entsize}")
    table = _read_at(f, sym_hdr[4], sym_hdr[5] - sym_hdr[5] % entsize)
    for index, (st_name, st_info, _other, shndx, value, size) in enumerate(_SYM.iter_unpack(table)):
        name = wanted.get(st_name)
        if name is None or shndx == _SHN_UNDEF or name in out:
            continue
        kind = st_info & 0xF
        if kind in (_STT_OBJECT, _STT_FUNC, 10):  # 10 = STT_GNU_IFUNC
            out[name] = ElfSymbol(name, value, size, kind)
            entry = index * entsize
            proofs.append((sym_hdr[4] + entry, table[entry : entry + entsize]))
            proofs.append((str_hdr[4] + st_name, name.encode() + b"\0"))


def _parse(f: BinaryIO, path: str, names: FrozenSet[str], proofs: List[Tuple[int, bytes]]) -> ElfImage:
    """The image; ``proofs`` gets (offset, bytes) of every part of the file the result was read from."""
    head = _read_at(f, 0, _EHDR.size)
    proofs.append((0, head))
    ehdr = _EHDR.unpack(head)
    ident = ehdr[0]
    if ident[:4] != b"\x7fELF":
        raise ElfError(f"{path} is not an ELF file")
    if ident[4] != 2 or ident[5] != 1:
        raise ElfError(f"{path} is not a little-endian ELF64 file")
    e_type, phoff, shoff = ehdr[1], ehdr[5], ehdr[6]
    phentsize, phnum, shentsize, shnum = ehdr[9], ehdr[10], ehdr[11], ehdr[12]

    loads: List[int] = []
    segments: List[Tuple[int, int, int]] = []
    if phoff and phnum:
        raw = _read_at(f, phoff, phentsize * phnum)
        proofs.append((phoff, raw))
        for i in range(phnum):
            ph = _PHDR.unpack_from(raw, i * phentsize)
            if ph[0] == _PT_LOAD:
                loads.append(ph[3] & ~0xFFF)
                segments.append((ph[3], ph[2], ph[5]))
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
                    _scan_table(f, sh, sections[sh[6]], missing, symbols, proofs)
    return ElfImage(path, e_type, first_load, symbols, tuple(segments))


# (st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns, names) -> (image, proofs). Keyed by the identity
# of the file we opened (fstat of our own descriptor), never by its name: the 32 workers of a service
# map one interpreter through 32 different /proc/<pid>/map_files names, and a binary replaced at the
# same path (a new inode, or rewritten in place: a new ctime even when its mtime is put back) is
# another key. A hit is still checked against the file: the bytes the result came from (headers,
# each symbol's entry and name) are read again, a few preads, so even a rewrite within one tick of
# the file system's clock (same ctime) is parsed afresh, never served a stale address.
_CACHE_SIZE = 32
_cache: OrderedDict[Tuple[object, ...], Tuple[ElfImage, Tuple[Tuple[int, bytes], ...]]] = OrderedDict()
_cache_lock = threading.Lock()


def file_identity(st: os.stat_result) -> Tuple[int, int, int, int, int]:
    """What tells one file (version) from another: device, inode, size, mtime and ctime."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def read_symbols(path: str, names: Collection[str]) -> ElfImage:
    """Look up ``names`` in ``path``'s .dynsym (and .symtab if present).

    Only defined symbols are returned; a name that is not found is simply absent from
    ``ElfImage.symbols``. Results are cached per file identity (``file_identity`` of the
    opened file, checked against the bytes they came from), so injections into many
    processes of one interpreter parse it once.
    Raises OSError if the file cannot be read, ElfError if it is not ELF64 LE.
    """
    wanted = frozenset(names)
    with open(path, "rb") as f:
        key = (*file_identity(os.fstat(f.fileno())), wanted)
        image = _cached(f, key)
        if image is None:
            proofs: List[Tuple[int, bytes]] = []
            try:
                image = _parse(f, path, wanted, proofs)
            except struct.error as exc:  # entry sizes smaller than the entries they claim to hold
                raise ElfError("%s is a malformed ELF file: %s" % (path, exc)) from None
            with _cache_lock:
                _cache[key] = (image, tuple(proofs))
                while len(_cache) > _CACHE_SIZE:
                    _cache.popitem(last=False)
    return image if image.path == path else image._replace(path=path)


def _cached(f: BinaryIO, key: Tuple[object, ...]) -> ElfImage | None:
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
    if hit is None:
        return None
    image, proofs = hit
    for offset, data in proofs:
        if os.pread(f.fileno(), len(data), offset) != data:
            return None
    return image


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
