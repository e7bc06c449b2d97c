"""The clients that connected before their whole request arrived: pure bookkeeping, no I/O.

For each waiting client it keeps its fd, its read deadline, whether it speaks in messages
(seqpacket) or a byte stream, and the bytes it sent so far. The server owns the sockets; this
module only answers "is this fd waiting?", "whose deadline has passed?" and "when is the next
one?".

Why flat tables indexed by fd instead of one object per client: 5,000 idle clients then cost
about 20 to 40 bytes each in a handful of buffers, and those are dropped as soon as the last
client leaves, so the memory goes back to the system (README, Performance). One small Python
object per client cost about 300 bytes each, and CPython's allocator kept the pages they had
used long after they were freed. The kernel hands out the lowest free fd, so the tables are
never longer than the most clients waiting at once, plus the few fds greeterd holds anyway.

The tables are memoryviews cast to C doubles and ints over bytearrays: what array.array does,
without its import, which pulls in collections.abc (about 1 ms of every cold start).
"""

from __future__ import annotations

#: Entries for finished clients the deadline queue may hold beyond twice the live ones before
#: it is rebuilt. Finished clients leave the queue lazily (when they reach its head), so
#: without this, clients that connect and leave fast would pile up for the whole read timeout,
#: and a queue that never empties would grow for good; asyncio compacts its cancelled timers
#: the same way.
DEADLINE_SLACK = 1024

_NOT_WAITING = 0.0  # deadline of an fd that is not waiting (monotonic deadlines are > 0)
_STREAM = 0
_MESSAGES = 1
_EMPTY = memoryview(b"")


def _doubles(length: int, start: memoryview[float] | memoryview[int] = _EMPTY) -> memoryview[float]:
    """``length`` C doubles, the first ones copied from ``start``, the rest zero."""
    return memoryview(_zeros(length * 8, start)).cast("d")


def _ints(length: int, start: memoryview[float] | memoryview[int] = _EMPTY) -> memoryview[int]:
    """``length`` C ints, the first ones copied from ``start``, the rest zero."""
    return memoryview(_zeros(length * 4, start)).cast("i")


def _zeros(size: int, start: memoryview[float] | memoryview[int]) -> bytearray:
    raw = bytearray(size)
    raw[: start.nbytes] = start.cast("B")
    return raw


class WaitingClients:
    """Waiting clients by fd, and their deadlines in arrival order (which is deadline order,
    as every client gets the same read timeout)."""

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self._deadline_by_fd = _doubles(0)  # _NOT_WAITING, or when the client's time is up
        self._mode_by_fd = bytearray()  # _STREAM or _MESSAGES
        self._received: dict[int, bytes] = {}  # only for clients that sent part of a request
        # The deadline queue: (fd, deadline) pairs in [_head, _tail), oldest first. An entry
        # whose deadline no longer matches _deadline_by_fd is stale: that client left.
        self._queue_fds = _ints(0)
        self._queue_deadlines = _doubles(0)
        self._head = self._tail = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, fd: int) -> bool:
        return fd < len(self._deadline_by_fd) and self._deadline_by_fd[fd] != _NOT_WAITING

    def add(self, fd: int, deadline: float, message_mode: bool, received: bytes) -> None:
        """Start waiting for ``fd`` until ``deadline``, which must not be earlier than any
        deadline added before it."""
        if fd in self:
            raise ValueError(f"fd {fd} is already waiting")
        if fd >= len(self._deadline_by_fd):
            # Doubling keeps the cost of growing small when fds climb one by one.
            length = max(fd + 1, 2 * len(self._deadline_by_fd))
            self._deadline_by_fd = _doubles(length, self._deadline_by_fd)
            self._mode_by_fd += bytes(length - len(self._mode_by_fd))
        self._deadline_by_fd[fd] = deadline
        self._mode_by_fd[fd] = _MESSAGES if message_mode else _STREAM
        if received:
            self._received[fd] = received
        if self._tail == len(self._queue_fds):
            self._resize_queue(max(16, 2 * self._tail))
        self._queue_fds[self._tail] = fd
        self._queue_deadlines[self._tail] = deadline
        self._tail += 1
        self._count += 1

    def _resize_queue(self, length: int) -> None:
        self._queue_fds = _ints(length, self._queue_fds[: self._tail])
        self._queue_deadlines = _doubles(length, self._queue_deadlines[: self._tail])

    def message_mode(self, fd: int) -> bool:
        """Whether one message is the whole request (seqpacket), not a line in a stream."""
        return self._mode_by_fd[fd] == _MESSAGES

    def received(self, fd: int) -> bytes:
        """What the client sent so far."""
        return self._received.get(fd, b"")

    def set_received(self, fd: int, received: bytes) -> None:
        self._received[fd] = received

    def remove(self, fd: int) -> None:
        """Stop waiting for ``fd`` (answered, refused or gone). When the last client leaves,
        every table is dropped, which is how the memory goes back."""
        self._deadline_by_fd[fd] = _NOT_WAITING
        self._received.pop(fd, None)
        self._count -= 1
        if not self._count:
            self._clear()
        elif self._tail > 2 * self._count + DEADLINE_SLACK:
            self._compact()

    def queued(self) -> int:
        """Entries the deadline queue holds, passed and stale ones included: at most twice
        the waiting clients plus DEADLINE_SLACK, as _compact() sees to."""
        return self._tail

    def _compact(self) -> None:
        """Keep only the entries of clients still waiting, at the start of the queue."""
        fds, deadlines, by_fd = self._queue_fds, self._queue_deadlines, self._deadline_by_fd
        kept = 0
        for index in range(self._head, self._tail):
            fd, deadline = fds[index], deadlines[index]
            if by_fd[fd] == deadline:
                fds[kept], deadlines[kept] = fd, deadline
                kept += 1
        self._head, self._tail = 0, kept
        if kept < len(fds) // 4:
            self._resize_queue(max(16, 2 * kept))  # and give back what a burst took

    def next_deadline(self) -> float | None:
        """The earliest deadline of a client still waiting, if any."""
        self._skip_stale()
        return self._queue_deadlines[self._head] if self._head < self._tail else None

    def first_expired(self, now: float) -> int | None:
        """A waiting client whose deadline is ``now`` or earlier, if any. It keeps waiting
        until remove(), so that what it sent can still be read."""
        self._skip_stale()
        if self._head == self._tail or self._queue_deadlines[self._head] > now:
            return None
        return self._queue_fds[self._head]

    def _skip_stale(self) -> None:
        fds, deadlines, by_fd = self._queue_fds, self._queue_deadlines, self._deadline_by_fd
        head, tail = self._head, self._tail
        while head < tail and by_fd[fds[head]] != deadlines[head]:
            head += 1
        self._head = head
