"""The `flex` model's journal validates each record on read (issue 26 item 4): a line with the right
key but a missing, mistyped or edited `texts` is re-run with a counted warning. It never crashes
the rerun and is never reused. Also covers the JSONL module the journal and the judge file share
(flex_models.jsonl)."""
import json
import logging

import pytest

from flex_models import jsonl
from flex_models.journal import Journal, journal_file


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def _rewrite(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))


@pytest.mark.parametrize("edit, why", [
    (lambda r: r.pop("texts"), "'texts' missing"),
    (lambda r: r.update(texts="<answer>9</answer>"), "'texts' missing or not a non-empty list"),
    (lambda r: r.update(texts=[1, 2]), "'texts' missing or not a non-empty list"),
    (lambda r: r.update(texts=[]), "'texts' missing or not a non-empty list"),
    (lambda r: r.update(output_tokens="5"), "'output_tokens' not an integer"),
    (lambda r: r["texts"].__setitem__(0, "<answer>9</answer>"), "content hash"),  # edited texts, right shape
    (lambda r: r.pop("sha"), "content hash"),
])
def test_bad_record_is_rerun_with_a_warning_never_reused(tmp_path, caplog, edit, why):
    j = Journal(tmp_path)
    j.put("k-good", ["<answer>1</answer>"], 10, 3)
    j.put("k-bad", ["<answer>2</answer>"], 11, 4)
    j.close()
    path = tmp_path / journal_file(0)
    recs = _lines(path)
    edit(recs[1])
    _rewrite(path, recs)
    with caplog.at_level(logging.WARNING, logger="flex_models"):
        again = Journal(tmp_path)  # never a crash
    assert again.get("k-bad") is None  # never reused: the model judges that request again
    assert again.get("k-good") == {"key": "k-good", "texts": ["<answer>1</answer>"], "prompt_tokens": 10,
                                   "output_tokens": 3}
    assert again.bad_lines == 1 and sum(again.bad_reasons.values()) == 1
    assert why in next(iter(again.bad_reasons))
    assert f"{path}:2" in caplog.text and "re-run" in caplog.text
    # the re-run's answer is appended and reused from then on
    again.put("k-bad", ["<answer>2</answer>"], 11, 4)
    again.close()
    third = Journal(tmp_path)
    assert third.get("k-bad")["texts"] == ["<answer>2</answer>"] and third.bad_lines == 1


def test_not_json_not_utf8_and_partial_lines(tmp_path):
    j = Journal(tmp_path)
    j.put("a", ["x"], None, 1)
    j.close()
    path = tmp_path / journal_file(0)
    with open(path, "ab") as f:
        f.write(b"[1, 2]\n" + b'{"key": "b", "texts": ["\xff"]}\n' + b"not json\n" + b'{"key": "c", "tex')
    other = tmp_path / journal_file(1)  # another rank, mid-write: its last line skipped, never cut
    other.write_bytes(b'{"key": "d", "te')
    again = Journal(tmp_path)
    assert len(again) == 1 and again.get("a")["texts"] == ["x"]
    assert again.bad_lines == 3
    assert any("not UTF-8 (byte 0xff" in r for r in again.bad_reasons)
    assert path.read_bytes().endswith(b"not json\n")  # own file's partial line cut
    assert other.read_bytes() == b'{"key": "d", "te'


def test_jsonl_reader_names_each_bad_line_and_keeps_going(tmp_path):
    p = tmp_path / "f.jsonl"
    p.write_bytes(b'{"a": 1}\n\n\xc3\x28\n{"b": 2}\n' + b'"' + b"x" * 100 + b'"\n{bad\n{"c": 3}\n{"d"')
    lines = list(jsonl.read(p, max_line_bytes=50))
    assert [(ln.line, ln.ok) for ln in lines] == [(1, True), (3, False), (4, True), (5, False), (6, False),
                                                  (7, True), (8, False)]
    assert lines[1].error.startswith("not UTF-8 (byte 0xc3 at byte 1")
    assert lines[3].error == "line is 102 bytes, over the limit of 50"
    assert lines[4].error.startswith("invalid JSON")
    assert lines[6].partial and lines[5].value == {"c": 3}
    typed = tmp_path / "typed.jsonl"  # a file a person wrote: its last line may lack the newline
    typed.write_bytes(b'{"a": 1}\n{"b": 2}')
    assert [ln.value for ln in jsonl.read(typed, whole_file=True)] == [{"a": 1}, {"b": 2}]
    assert [ln.partial for ln in jsonl.read(typed)] == [False, True]  # an append-only log: a write in progress
    assert jsonl.cut_partial_last_line(p) == 4 and p.read_bytes().endswith(b'{"c": 3}\n')
    assert jsonl.cut_partial_last_line(tmp_path / "missing.jsonl") == 0


def test_appender_repairs_writes_whole_lines_and_nan_as_null(tmp_path):
    p = tmp_path / "out.jsonl"
    p.write_bytes(b'{"a": 1}\n{"half')
    with jsonl.Appender(p, fsync=True) as out:
        assert out.cut == 6
        out.write({"x": float("nan"), "y": [float("inf"), 1.5]}, {"z": "é"})
    assert p.read_text(encoding="utf-8") == '{"a": 1}\n{"x": null, "y": [null, 1.5]}\n{"z": "é"}\n'
