"""A pure scan of a pickle's opcodes: where it ends, and how deep what it builds would nest.

Nothing is built and nothing is called. The scan walks the opcodes, decodes their
arguments, and simulates the unpickler's stack with one small integer per value, so it
knows, before any unpickler runs, whether the bytes are a pickle at all and how deeply the
objects would nest. That matters because CPython's C unpickler builds nesting without
recursing, but hashing a deeply nested tuple (a dict key, a set member) does recurse, in C,
without a recursion check: a 1 MB pickle of nested tuples used as a dict key kills the
process with SIGSEGV. A depth bound checked here, in a loop, makes that impossible.

Every container is a node with a depth (1 + the deepest thing it holds). Values reached
again through the memo are the same node, so a list that grows after it was nested inside
another raises the outer depth too; a container put inside itself has no finite depth and
is refused. Results of calls (REDUCE, BUILD, NEWOBJ) count as containers of their arguments,
an over-estimate that is never below the truth.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from securitynet.loader._refusal import Refusal

#: Deepest nesting a checkpoint's pickle may build (over-estimated as described above). A
#: state dict is ~5 levels, a training checkpoint with optimiser state ~9.
MAX_DEPTH = 100


class NotAPickle(Exception):
    """The bytes are no pickle: an unknown opcode, a truncated argument, a stack underflow.

    ``truncated``: the bytes ran out before the pickle ended (a longer file may still be one).
    ``acted``: before the error, the bytes named a global or called something, which
    ``pickle.load`` would already have done when it reached the error.
    """

    def __init__(self, message: str, *, truncated: bool = False, acted: bool = False) -> None:
        super().__init__(message)
        self.truncated = truncated
        self.acted = acted


@dataclass(frozen=True)
class OpScan:
    end: int  # offset just past the STOP opcode
    depth: int  # deepest nesting of what the pickle builds
    opcodes: int


# Opcode byte -> how its argument is laid out.
_NONE, _FIXED, _LINE, _LINE2, _LEN1, _LEN4, _LEN8 = range(7)
_ARGS: dict[int, tuple[int, int]] = {}
for _ops, _kind, _n in (
    (b"(.012N}ab]d]elt)suRQ\x81\x85\x86\x87\x88\x89\x8f\x90\x91\x92\x93\x94o\x97\x98", _NONE, 0),
    (b"Khq\x80\x82", _FIXED, 1),
    (b"M\x83", _FIXED, 2),
    (b"Jjr\x84", _FIXED, 4),
    (b"G\x95", _FIXED, 8),
    (b"ILFSVPgp", _LINE, 0),
    (b"ci", _LINE2, 0),
    (b"UC\x8c\x8a", _LEN1, 0),
    (b"TXB\x8b", _LEN4, 0),
    (b"\x8d\x8e\x96", _LEN8, 0),
):
    for _op in _ops:
        _ARGS[_op] = (_kind, _n)

# What an opcode does to the stack, one small integer per opcode byte (0: not an opcode).
(
    _BAD, _PUSH, _MARK, _EMPTY, _GET, _PUT, _MEMOIZE, _TUPLE_N, _FROM_MARK, _ADD_FROM_MARK,
    _ADD, _CALL, _STACK_GLOBAL, _POP, _POP_MARK, _DUP, _STOP, _BUFFER, _NOTHING,
) = range(19)  # fmt: skip
_ACTION = [_BAD] * 256
_COUNT = [0] * 256  # values popped by _TUPLE_N, _ADD and _CALL
for _ops, _action, _k in (
    # plain values: numbers, strings, bytes, globals, persistent ids by text, extensions
    (b"NKMJGILFSVUCTXB\x88\x89\x8a\x8b\x8c\x8d\x8e\x96cP\x82\x83\x84", _PUSH, 0),
    (b"(", _MARK, 0),
    (b"})]\x8f", _EMPTY, 0),
    (b"ghj", _GET, 0),
    (b"pqr", _PUT, 0),
    (b"\x94", _MEMOIZE, 0),
    (b"\x85", _TUPLE_N, 1),
    (b"\x86", _TUPLE_N, 2),
    (b"\x87", _TUPLE_N, 3),
    (b"tldio\x91", _FROM_MARK, 0),  # TUPLE LIST DICT INST OBJ FROZENSET
    (b"eu\x90", _ADD_FROM_MARK, 0),  # APPENDS SETITEMS ADDITEMS
    (b"ab", _ADD, 1),  # APPEND, BUILD
    (b"s", _ADD, 2),  # SETITEM
    (b"RQ\x81", _CALL, 2),  # REDUCE, NEWOBJ; BINPERSID is fixed to 1 below
    (b"\x92", _CALL, 3),  # NEWOBJ_EX
    (b"\x93", _STACK_GLOBAL, 2),
    (b"0", _POP, 0),
    (b"1", _POP_MARK, 0),
    (b"2", _DUP, 0),
    (b".", _STOP, 0),
    (b"\x97\x98", _BUFFER, 0),
    (b"\x80\x95", _NOTHING, 0),
):
    for _op in _ops:
        _ACTION[_op] = _action
        _COUNT[_op] = _k
_COUNT[ord("Q")] = 1
_GLOBALS = frozenset(b"cio")  # GLOBAL, INST, OBJ: name or call a global
_KIND = [-1] * 256
_SIZE = [0] * 256
for _op, (_kind, _n) in _ARGS.items():
    _KIND[_op] = _kind
    _SIZE[_op] = _n
assert all((_ACTION[o] == _BAD) == (_KIND[o] < 0) for o in range(256))


class _Graph:
    """Depths of container nodes, with the parent links needed to raise them later."""

    def __init__(self, max_depth: int) -> None:
        self.depth: list[int] = []
        self.parents: list[list[int]] = []
        self.max_depth = max_depth
        self.deepest = 0

    def new(self, children: list[int]) -> int:
        node = len(self.depth)
        self.depth.append(1)
        self.parents.append([])
        for child in children:
            if child >= 0:
                self.add(node, child)
        return node

    def add(self, parent: int, child: int) -> None:
        self.parents[child].append(parent)
        if self.depth[child] + 1 > self.depth[parent]:
            self._raise(parent, self.depth[child] + 1)

    def _raise(self, node: int, depth: int) -> None:
        todo = [(node, depth)]
        while todo:
            node, depth = todo.pop()
            if depth <= self.depth[node]:
                continue
            if depth > self.max_depth:
                raise Refusal(
                    "pickle-too-deep",
                    f"the pickle nests deeper than {self.max_depth} levels (or holds itself)",
                )
            self.depth[node] = depth
            self.deepest = max(self.deepest, depth)
            todo.extend((parent, depth + 1) for parent in self.parents[node])


def scan(
    data: bytes | bytearray | memoryview, start: int = 0, *, max_depth: int = MAX_DEPTH
) -> OpScan:
    """Scan the pickle starting at ``data[start]`` up to its STOP; raise NotAPickle or Refusal."""
    acted = [False]
    try:
        return _scan(data, start, max_depth, acted)
    except NotAPickle as exc:
        exc.acted = acted[0]
        raise


def _scan(
    data: bytes | bytearray | memoryview, start: int, max_depth: int, acted: list[bool]
) -> OpScan:
    raw = data if isinstance(data, (bytes, bytearray)) else bytes(data)
    n = len(raw)
    pos = start
    stack: list[int] = []  # -1 for a plain value, else a node of ``graph``
    marks: list[int] = []
    memo: dict[int, int] = {}
    graph = _Graph(max_depth)
    action_of, kind_of, size_of, count_of = _ACTION, _KIND, _SIZE, _COUNT
    count = 0
    while True:
        if pos >= n:
            raise NotAPickle(f"no STOP opcode in {n - start} bytes", truncated=True)
        op = raw[pos]
        action = action_of[op]
        if action == _BAD:
            raise NotAPickle(f"unknown opcode {op:#04x} at offset {pos}")
        count += 1
        pos += 1
        arg_at = pos
        kind = kind_of[op]
        if kind == _NONE:
            pass
        elif kind == _FIXED:
            pos += size_of[op]
        elif kind == _LEN1:
            if pos >= n:
                raise NotAPickle("truncated length", truncated=True)
            pos += 1 + raw[pos]
        elif kind == _LEN4:
            if pos + 4 > n:
                raise NotAPickle("truncated length", truncated=True)
            (length,) = struct.unpack_from("<i" if op in (0x54, 0x8B) else "<I", raw, pos)
            if length < 0:
                raise NotAPickle("negative length")
            pos += 4 + length
        elif kind == _LINE:
            pos = _line_end(raw, pos, n)
        elif kind == _LINE2:
            pos = _line_end(raw, _line_end(raw, pos, n), n)
        elif kind == _LEN8:
            if pos + 8 > n:
                raise NotAPickle("truncated length", truncated=True)
            pos += 8 + struct.unpack_from("<Q", raw, pos)[0]
        if pos > n:
            raise NotAPickle(
                f"opcode {op:#04x} at offset {arg_at - 1} runs past the end", truncated=True
            )

        if action == _PUSH:
            if op in _GLOBALS:
                acted[0] = True
            stack.append(-1)
        elif action == _PUT:
            if not stack:
                raise NotAPickle("PUT on an empty stack")
            key = _memo_key(raw, op, arg_at, pos)
            if key > count:
                # CPython's C unpickler sizes its memo array by the largest index: PUT
                # 1562079609 in a 350-byte pickle allocates 25 GB (found by the fuzz test).
                # Picklers number their memo entries 0, 1, 2, ...: never past the opcodes.
                raise Refusal(
                    "pickle-memo-index", f"memo index {key} after only {count} opcodes"
                )
            memo[key] = stack[-1]
        elif action == _GET:
            key = _memo_key(raw, op, arg_at, pos)
            if key not in memo:
                raise NotAPickle(f"memo key {key} read before it is written")
            stack.append(memo[key])
        elif action == _MARK:
            marks.append(len(stack))
        elif action in (_TUPLE_N, _CALL):
            acted[0] = acted[0] or action == _CALL
            k = count_of[op]
            if len(stack) - (marks[-1] if marks else 0) < k:
                raise NotAPickle("stack underflow")
            items = stack[-k:]
            del stack[-k:]
            stack.append(graph.new(items))
        elif action == _EMPTY:
            stack.append(graph.new([]))
        elif action == _FROM_MARK:
            acted[0] = acted[0] or op in _GLOBALS
            stack.append(graph.new(_pop_mark(stack, marks)))
        elif action in (_ADD, _ADD_FROM_MARK):
            if action == _ADD:
                k = count_of[op]
                _need(stack, marks, k + 1)
                items = stack[-k:]
                del stack[-k:]
            else:
                items = _pop_mark(stack, marks)
                _need(stack, marks, 1)
            if stack[-1] < 0:  # e.g. BUILD on a global: the unpickler will try, so do we
                stack[-1] = graph.new([])
            target = stack[-1]
            for item in items:
                if item >= 0:
                    graph.add(target, item)
        elif action == _MEMOIZE:
            if not stack:
                raise NotAPickle("MEMOIZE on an empty stack")
            memo[len(memo)] = stack[-1]
        elif action == _STACK_GLOBAL:
            acted[0] = True
            _need(stack, marks, 2)
            del stack[-2:]
            stack.append(-1)
        elif action == _POP:
            if marks and marks[-1] == len(stack):
                marks.pop()
            else:
                _need(stack, marks, 1)
                stack.pop()
        elif action == _POP_MARK:
            _pop_mark(stack, marks)
        elif action == _DUP:
            _need(stack, marks, 1)
            stack.append(stack[-1])
        elif action == _STOP:
            if not stack:
                raise NotAPickle("STOP on an empty stack")
            return OpScan(end=pos, depth=graph.deepest, opcodes=count)
        elif action == _BUFFER:
            raise NotAPickle("out-of-band buffers (protocol 5) are not part of a checkpoint")


def _line_end(view: bytes | bytearray, pos: int, n: int) -> int:
    end = view.find(b"\n", pos, n)
    if end < 0:
        raise NotAPickle("a text argument has no end of line", truncated=True)
    return end + 1


def _memo_key(view: bytes | bytearray, op: int, arg_at: int, end: int) -> int:
    if op in (0x68, 0x71):  # BINGET, BINPUT
        return view[arg_at]
    if op in (0x6A, 0x72):  # LONG_BINGET, LONG_BINPUT
        return int(struct.unpack_from("<I", view, arg_at)[0])
    text = bytes(view[arg_at : end - 1])
    if not text.isdigit():
        raise NotAPickle(f"memo key {text[:20]!r} is not a number")
    return int(text)


def _need(stack: list[int], marks: list[int], k: int) -> None:
    if len(stack) - (marks[-1] if marks else 0) < k:
        raise NotAPickle("stack underflow")


def _pop_mark(stack: list[int], marks: list[int]) -> list[int]:
    if not marks:
        raise NotAPickle("no MARK to pop to")
    at = marks.pop()
    items = stack[at:]
    del stack[at:]
    return items


def is_pickle(data: bytes | bytearray, *, limit_reached: bool) -> bool:
    """Whether ``data`` (a file's first bytes) reads as a pickle from offset 0.

    A pickle is what a pickle reader would act on: bytes that reach a STOP, that open with a
    PROTO opcode (2 to 5), or that name a global or call something before they break
    (``pickle.load`` has run that call by the time it notices). ``limit_reached``: ``data``
    is only the head of a longer file, so running out of bytes without an error means "a
    pickle, as far as we read".
    """
    if len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        return True
    try:
        scan(data)
    except NotAPickle as exc:
        return exc.acted or (limit_reached and exc.truncated)
    except Refusal:  # too deep, but a pickle
        return True
    return True
