"""The clients that connected before their whole request arrived: pure bookkeeping, no I/O.

For each waiting client it keeps its fd, its deadline, whether it speaks in messages
(seqpacket) or a byte stream, the bytes it sent so far, and its uid. lines.HeldClients does
the I/O (the sockets, epoll, the client cap); this module only answers "is this fd waiting?",
"whose deadline has passed?" and "when is the next one?". UserShares counts the waiting clients
per uid: the share of the waiting places one user may take (server.MAX_CLIENTS_PER_UID says
why).

Deadlines are kept in arrival order, in lanes: every deadline in a lane comes from the same
timeout, so arrival order is deadline order within it, and the earliest deadline is always at
the head of some lane. HeldClients has a lane for the read timeout and one for Varlink's longer
idle timeout; in a single queue, a client given 10 s would hold back the 5 s of every client
that came after it.

Why flat tables indexed by fd instead of one object per client: 5,000 idle clients then cost
about 20 to 40 bytes each in a handful of buffers, and those are dropped as soon as the last
client leaves, so the memory goes back to the system (docs/performance.md). One small Python
object per client cost about 300 bytes each, and CPython's allocator kept the pages they had
used long after they were freed. The kernel hands out the lowest free fd, so the tables are
never longer than the most clients waiting at once, plus the few fds greeterd holds anyway.

The tables are memoryviews cast to C doubles and ints over bytearrays: what array.array does,
without its import, which pulls in collections.abc (about 1 ms of every cold start).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection

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


class _DeadlineQueue:
    """(fd, deadline) pairs in [head, tail), oldest first, each deadline no earlier than those
    before it. An entry whose deadline no longer matches the client's is stale: that client
    left, or its deadline moved (to this lane or another)."""

    def __init__(self) -> None:
        self.fds = _ints(0)
        self.deadlines = _doubles(0)
        self.head = self.tail = 0

    def push(self, fd: int, deadline: float) -> None:
        if self.tail == len(self.fds):
            self.resize(max(16, 2 * self.tail))
        self.fds[self.tail] = fd
        self.deadlines[self.tail] = deadline
        self.tail += 1

    def resize(self, length: int) -> None:
        self.fds = _ints(length, self.fds[: self.tail])
        self.deadlines = _doubles(length, self.deadlines[: self.tail])

    def skip_stale(self, by_fd: memoryview[float]) -> None:
        fds, deadlines = self.fds, self.deadlines
        head, tail = self.head, self.tail
        while head < tail and by_fd[fds[head]] != deadlines[head]:
            head += 1
        self.head = head

    def compact(self, by_fd: memoryview[float]) -> None:
        """Keep only the live entries, at the start of the queue."""
        fds, deadlines = self.fds, self.deadlines
        kept = 0
        for index in range(self.head, self.tail):
            fd, deadline = fds[index], deadlines[index]
            if by_fd[fd] == deadline:
                fds[kept], deadlines[kept] = fd, deadline
                kept += 1
        self.head, self.tail = 0, kept
        if kept < len(fds) // 4:
            self.resize(max(16, 2 * kept))  # and give back what a burst took


class WaitingClients:
    """Waiting clients by fd, and their deadlines in ``lanes`` queues (see above)."""

    def __init__(self, lanes: int = 1) -> None:
        self._lanes = lanes
        self._clear()

    def _clear(self) -> None:
        self._deadline_by_fd = _doubles(0)  # _NOT_WAITING, or when the client's time is up
        self._mode_by_fd = bytearray()  # _STREAM or _MESSAGES
        self._uid_by_fd = _ints(0)  # the peer's uid, as lines.ucred() reads it
        self._received: dict[int, bytes] = {}  # only for clients that sent part of a request
        self._queues = [_DeadlineQueue() for _ in range(self._lanes)]
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, fd: int) -> bool:
        return fd < len(self._deadline_by_fd) and self._deadline_by_fd[fd] != _NOT_WAITING

    def add(
        self,
        fd: int,
        deadline: float,
        message_mode: bool,
        received: bytes,
        lane: int = 0,
        *,
        uid: int = -1,
    ) -> None:
        """Start waiting for ``fd`` (whose peer is ``uid``) until ``deadline``, which must not
        be earlier than any deadline added to ``lane`` before it."""
        if fd in self:
            raise ValueError(f"fd {fd} is already waiting")
        if fd >= len(self._deadline_by_fd):
            # Doubling keeps the cost of growing small when fds climb one by one.
            length = max(fd + 1, 2 * len(self._deadline_by_fd))
            self._deadline_by_fd = _doubles(length, self._deadline_by_fd)
            self._mode_by_fd += bytes(length - len(self._mode_by_fd))
            self._uid_by_fd = _ints(length, self._uid_by_fd)
        self._deadline_by_fd[fd] = deadline
        self._uid_by_fd[fd] = uid
        self._mode_by_fd[fd] = _MESSAGES if message_mode else _STREAM
        if received:
            self._received[fd] = received
        self._queues[lane].push(fd, deadline)
        self._count += 1

    def renew(self, fd: int, deadline: float, lane: int = 0) -> None:
        """Give a waiting client a new deadline (the same rule as add() for its lane); its old
        entry goes stale."""
        if fd not in self:
            raise ValueError(f"fd {fd} is not waiting")
        self._deadline_by_fd[fd] = deadline
        self._queues[lane].push(fd, deadline)
        self._compact_if_stale()

    def message_mode(self, fd: int) -> bool:
        """Whether one message is the whole request (seqpacket), not a line in a stream."""
        return self._mode_by_fd[fd] == _MESSAGES

    def received(self, fd: int) -> bytes:
        """What the client sent so far."""
        return self._received.get(fd, b"")

    def set_received(self, fd: int, received: bytes) -> None:
        self._received[fd] = received

    def remove(self, fd: int) -> int:
        """Stop waiting for ``fd`` (answered, refused or gone); return its uid. When the last
        client leaves, every table is dropped, which is how the memory goes back."""
        uid = self._uid_by_fd[fd]
        self._deadline_by_fd[fd] = _NOT_WAITING
        self._received.pop(fd, None)
        self._count -= 1
        if not self._count:
            self._clear()
        else:
            self._compact_if_stale()
        return uid

    def queued(self) -> int:
        """Entries the deadline queues hold, passed and stale ones included: at most twice
        the waiting clients plus DEADLINE_SLACK, as _compact_if_stale() sees to."""
        return sum(queue.tail for queue in self._queues)

    def _compact_if_stale(self) -> None:
        if self.queued() > 2 * self._count + DEADLINE_SLACK:
            for queue in self._queues:
                queue.compact(self._deadline_by_fd)

    def next_deadline(self) -> float | None:
        """The earliest deadline of a client still waiting, if any."""
        earliest = None
        for queue in self._queues:
            queue.skip_stale(self._deadline_by_fd)
            if queue.head < queue.tail:
                deadline = queue.deadlines[queue.head]
                if earliest is None or deadline < earliest:
                    earliest = deadline
        return earliest

    def first_expired(self, now: float) -> int | None:
        """A waiting client whose deadline is ``now`` or earlier, if any. It keeps waiting
        until remove(), so that what it sent can still be read."""
        for queue in self._queues:
            queue.skip_stale(self._deadline_by_fd)
            if queue.head < queue.tail and queue.deadlines[queue.head] <= now:
                return queue.fds[queue.head]
        return None


class UserShares:
    """How many waiting clients each uid has, and whether one more may wait: at most
    ``share`` per uid, except the ``exempt`` uids, which are not counted at all.

    A uid has an entry only while it has a client waiting, so the table holds at most as many
    entries as there are clients waiting, and none once they have all left.
    """

    def __init__(self, share: int, exempt: Collection[int] = ()) -> None:
        self.share = share
        self.exempt = frozenset(exempt)
        self._counts: dict[int, int] = {}

    def take(self, uid: int) -> bool:
        """Count one more waiting client of ``uid``; False, counting nothing, when ``uid``
        already has its share waiting."""
        if uid in self.exempt:
            return True
        counts = self._counts
        held = counts.get(uid, 0)
        if held >= self.share:
            return False
        counts[uid] = held + 1
        return True

    def give_back(self, uid: int) -> None:
        """One client of ``uid`` no longer waits (take() said yes for it)."""
        if uid in self.exempt:
            return
        held = self._counts[uid] - 1
        if held:
            self._counts[uid] = held
        else:
            del self._counts[uid]

    def held(self, uid: int) -> int:
        """Clients of ``uid`` counted as waiting now."""
        return self._counts.get(uid, 0)

    def __len__(self) -> int:
        """Uids with a client waiting (exempt ones never count)."""
        return len(self._counts)
