"""The clients that connected before their whole request arrived: pure bookkeeping, no I/O.

For each waiting client it keeps its fd, its read deadline, whether it speaks in messages
(seqpacket) or a byte stream, and the bytes it sent so far. The server owns the sockets; this
module only answers "is this fd waiting?", "whose deadline has passed?" and "when is the next
one?".

Why flat arrays indexed by fd instead of one object per client: 5,000 idle clients then cost
about 20 bytes each in a handful of buffers, and those buffers are dropped as soon as the last
client leaves, so the memory goes back to the system (README, Performance). One small Python
object per client cost about 300 bytes each, and CPython's allocator kept the pages they had
used long after they were freed. The kernel hands out the lowest free fd, so the arrays are
never longer than the most clients waiting at once, plus the few fds greeterd holds anyway.
"""

from __future__ import annotations

from array import array

#: Entries for finished clients the deadline queue may hold beyond twice the live ones before
#: it is rebuilt. Finished clients leave the queue lazily (when they reach its head), so
#: without this, clients that connect and leave fast would pile up for the whole read timeout,
#: and a queue that never empties would grow for good; asyncio compacts its cancelled timers
#: the same way.
DEADLINE_SLACK = 1024

_NOT_WAITING = 0.0  # deadline of an fd that is not waiting (monotonic deadlines are > 0)
_STREAM = 0
_MESSAGES = 1


class WaitingClients:
    """Waiting clients by fd, and their deadlines in arrival order (which is deadline order,
    as every client gets the same read timeout)."""

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self._deadline_by_fd = array("d")  # _NOT_WAITING, or when the client's time is up
        self._mode_by_fd = bytearray()  # _STREAM or _MESSAGES
        self._received: dict[int, bytes] = {}  # only for clients that sent part of a request
        # The deadline queue: (fd, deadline) pairs from index _head on, oldest first. An entry
        # whose deadline no longer matches _deadline_by_fd is stale: that client left.
        self._queue_fds = array("i")
        self._queue_deadlines = array("d")
        self._head = 0
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
            self._grow(fd + 1)
        self._deadline_by_fd[fd] = deadline
        self._mode_by_fd[fd] = _MESSAGES if message_mode else _STREAM
        if received:
            self._received[fd] = received
        self._queue_fds.append(fd)
        self._queue_deadlines.append(deadline)
        self._count += 1

    def _grow(self, size: int) -> None:
        # Doubling keeps the cost of growing small when fds climb one by one.
        extra = max(size, 2 * len(self._deadline_by_fd)) - len(self._deadline_by_fd)
        self._deadline_by_fd.frombytes(bytes(extra * self._deadline_by_fd.itemsize))
        self._mode_by_fd += bytes(extra)

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
        every buffer is dropped, which is how the memory goes back."""
        self._deadline_by_fd[fd] = _NOT_WAITING
        self._received.pop(fd, None)
        self._count -= 1
        if not self._count:
            self._clear()
        elif len(self._queue_fds) > 2 * self._count + DEADLINE_SLACK:
            self._compact()

    def queued(self) -> int:
        """Entries the deadline queue holds, passed and stale ones included: at most twice
        the waiting clients plus DEADLINE_SLACK, as _compact() sees to."""
        return len(self._queue_fds)

    def _compact(self) -> None:
        # Straight into new arrays: a list of (fd, deadline) tuples would leave up to 2,000 of
        # them in CPython's tuple free list, holding on to the memory this module gives back.
        fds, deadlines = array("i"), array("d")
        by_fd = self._deadline_by_fd
        for fd, deadline in zip(self._queue_fds, self._queue_deadlines, strict=True):
            if by_fd[fd] == deadline:
                fds.append(fd)
                deadlines.append(deadline)
        self._queue_fds, self._queue_deadlines, self._head = fds, deadlines, 0

    def next_deadline(self) -> float | None:
        """The earliest deadline of a client still waiting, if any."""
        self._skip_stale()
        return self._queue_deadlines[self._head] if self._head < len(self._queue_fds) else None

    def first_expired(self, now: float) -> int | None:
        """A waiting client whose deadline is ``now`` or earlier, if any. It keeps waiting
        until remove(), so that what it sent can still be read."""
        self._skip_stale()
        if self._head == len(self._queue_fds) or self._queue_deadlines[self._head] > now:
            return None
        return self._queue_fds[self._head]

    def _skip_stale(self) -> None:
        fds, deadlines, by_fd = self._queue_fds, self._queue_deadlines, self._deadline_by_fd
        head = self._head
        while head < len(fds) and by_fd[fds[head]] != deadlines[head]:
            head += 1
        self._head = head
