#!/usr/bin/env python3
"""The live-world harness's tailer on hand-made files: cuts, rewrites, the committed offset.

A failure of the live-world harness must be the stage's, never a race in the tailer; these
cases pin down what counts as a sighting."""
import json
import os
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live_world_harness as h  # noqa: E402


def line(item, seq, attempt=1, redelivery=False):
    return (json.dumps({"jobId": "J", "accountingEntryId": item, "status": "pending",
                        "sequence": seq, "attempt": attempt, "redelivery": redelivery})
            + "\n").encode()


class TailerTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "out.ndjson")
        self.t = h.Tailer(self.path)

    def tearDown(self):
        self.dir.cleanup()

    def write(self, data):
        with open(self.path, "wb") as f:
            f.write(data)

    def cut_and_append(self, offset, data):
        with open(self.path, "r+b") as f:
            f.truncate(offset)
            f.seek(0, 2)
            f.write(data)

    def commit(self, offset):
        tmp = self.path + ".committed.tmp"
        with open(tmp, "w") as f:
            f.write(f"{offset}\n")
        os.replace(tmp, self.path + ".committed")

    def seen(self):
        return [(s.id, s.attempt, s.redelivery, s.run) for s in self.t.sightings]

    def test_absent_file_and_partial_line(self):
        self.t.poll(1)
        self.assertEqual(self.seen(), [])
        self.write(line("a", 1) + line("b", 2)[:10])
        self.t.poll(1)
        self.assertEqual(self.seen(), [("a", 1, False, 1)])
        self.assertFalse(self.t.committed_seen)

    def test_rereading_is_not_a_sighting(self):
        self.write(line("a", 1) + line("b", 2))
        self.t.poll(1)
        self.t.poll(1)
        self.t.poll(1, stable=True)
        self.assertEqual(len(self.t.sightings), 2)

    def test_cut_and_regrow_beyond_the_old_size_is_noticed(self):
        a = line("a", 1)
        self.write(a + line("b", 2))
        self.t.poll(1)
        # The restart cuts b, redelivers it and writes more: the file is longer than before.
        self.cut_and_append(len(a), line("b", 2, 2, True) + line("c", 3) + line("d", 4))
        self.t.poll(2)
        self.assertEqual(self.seen(), [("a", 1, False, 1), ("b", 1, False, 1),
                                       ("b", 2, True, 2), ("c", 1, False, 2),
                                       ("d", 1, False, 2)])

    def test_same_length_rewrite_with_other_bytes_is_a_new_sighting(self):
        a = line("a", 1)
        self.write(a + line("b", 2))
        self.t.poll(1)
        self.cut_and_append(len(a), line("c", 2))  # same length, other item
        self.t.poll(2)
        self.assertEqual([s[0] for s in self.seen()], ["a", "b", "c"])

    def test_byte_identical_rewrite_is_the_same_line(self):
        a, b = line("a", 1), line("b", 2)
        self.write(a + b)
        self.t.poll(1)
        self.cut_and_append(len(a), b)
        self.t.poll(2)
        self.assertEqual(len(self.t.sightings), 2)

    def test_committed_offset_acknowledges_whole_lines_only(self):
        a, b = line("a", 1), line("b", 2)
        self.write(a + b)
        self.commit(len(a) + 5)  # not at a line end: only a is acknowledged
        self.t.poll(1)
        self.assertIsNotNone(self.t.sightings[0].acked_at)
        self.assertIsNone(self.t.sightings[1].acked_at)
        self.commit(len(a) + len(b))
        self.t.poll(1)
        self.assertEqual(set(self.t.acks), {("J", "a"), ("J", "b")})
        self.commit(len(a))
        self.t.poll(2)
        self.assertEqual(self.t.problems[0][0], "committed-offset")

    def test_unparsable_line_waits_while_the_writer_lives(self):
        a = line("a", 1)
        self.write(a + b"\x00\x00\n")
        self.t.poll(1)
        self.assertEqual(self.t.problems, [])
        self.cut_and_append(len(a), line("b", 2))  # the write completed
        self.t.poll(1)
        self.assertEqual([s[0] for s in self.seen()], ["a", "b"])
        self.write(a + line("b", 2) + b"garbage\n")
        self.t.poll(1, stable=True)
        self.assertEqual(self.t.problems[0][0], "whole-lines")


if __name__ == "__main__":
    unittest.main()
