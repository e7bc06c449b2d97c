"""Log lines: journal entries as journald parses them, levels, and the count of lines an
outlet refused (test_outlets.py has the outlets themselves)."""

from greeterd import log
from tests.support import MemoryOutlet


def parse_entry(entry: bytes) -> dict[str, str]:
    """The fields of one Native Journal Protocol entry, as journald reads them."""
    fields, rest = {}, entry
    while rest:
        line, _, rest = rest.partition(b"\n")
        if b"=" in line:
            key, _, value = line.partition(b"=")
            fields[key.decode()] = value.decode()
        else:
            size = int.from_bytes(rest[:8], "little")
            fields[line.decode()] = rest[8 : 8 + size].decode()
            rest = rest[8 + size + 1 :]
    return fields


def test_a_journal_entry_carries_the_message_priority_and_fields():
    """Fields become GREETER_* keys; a value with a newline uses the length-prefixed form."""
    entry = log.journal_entry(log.NOTICE, "refused\nrequest", {"peer_uid": 1000})
    assert parse_entry(entry) == {
        "MESSAGE": "refused\nrequest",
        "PRIORITY": "5",
        "SYSLOG_IDENTIFIER": "greeterd",
        "GREETER_PEER_UID": "1000",
    }


def test_lines_that_cannot_be_written_are_counted_and_reported_once_they_can():
    """While the outlet refuses, lines are dropped and counted; the first line written after
    says how many were lost, with GREETER_LINES_LOST, before the line itself."""
    outlet = MemoryOutlet(structured=True)
    logger = log.Log(log.INFO, outlet)
    outlet.taking = False
    for number in range(3):
        logger.notice(f"line {number}")
    assert logger.lost == 3
    outlet.taking = True
    logger.notice("after")
    lost, after = (parse_entry(entry) for entry in outlet.sent)
    assert lost["GREETER_LINES_LOST"] == "3"
    assert lost["PRIORITY"] == str(log.WARNING)
    assert after["MESSAGE"] == "after"
    assert logger.lost == 0


def test_lines_below_the_level_are_not_lost_lines():
    """A debug line at level info is not written and not counted."""
    outlet = MemoryOutlet()
    logger = log.Log(log.INFO, outlet)
    logger.debug("quiet")
    assert (outlet.sent, logger.lost) == ([], 0)


def test_a_named_process_begins_every_line_with_its_name():
    """greeterd --name=worker-2: each message, the lost-lines one too, starts "worker-2: "."""
    outlet = MemoryOutlet(structured=True)
    logger = log.Log(log.INFO, outlet, "worker-2")
    outlet.taking = False
    logger.notice("dropped")
    outlet.taking = True
    logger.info("stopping")
    messages = [parse_entry(entry)["MESSAGE"] for entry in outlet.sent]
    assert messages == [f"worker-2: {log.lost_message(1)}", "worker-2: stopping"]
    text = MemoryOutlet()
    log.Log(log.INFO, text, "worker-2").info("stopping")
    assert text.sent == [b"greeterd: info: worker-2: stopping\n"]
