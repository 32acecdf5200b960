"""The one media slot filler (flex_tasks.prompts.fill_slots) and its two callers: the judging
API's protocol messages (build_messages: no media drops the slots, a slotless template refuses
media) and judge-file's user templates (template_request: a slotless template puts media first,
several slots want their media even when none are given). 0 / 1 / several slots x 0 / 1 /
several media, and the errors each caller words."""
import dataclasses
from pathlib import Path

import pytest
from PIL import Image

from flex_judge.judging.api import JudgeInputError, build_messages
from flex_judge.judging.items import RowError, Template, template_request
from flex_models.errors import FlexJudgeError
from flex_tasks import prompts
from flex_tasks.prompts import SlotError, fill_slots, interleave
from flex_tasks.protocol import TASKS

IMG = Path(__file__).resolve().parents[1] / "examples" / "data" / "red_square.png"
VIS = "<|vision_start|><|image_pad|><|vision_end|>"
AUD = "<|audio_bos|><|AUDIO|><|audio_eos|>"
T0 = [("text", "Q")]
T1 = [("text", "Q "), ("image", VIS), ("text", " A")]
T2 = [("image", VIS), ("text", " vs "), ("audio", AUD), ("text", "?")]
API = dict(when_no_slot="error", when_no_media="drop")
FILE = dict(when_no_slot="prepend", when_no_media="count")


@pytest.mark.parametrize("parts, kinds, api, file", [
    # no slot
    (T0, [], T0, T0),
    (T0, ["image"], SlotError(0, 1), [("image", ""), ("text", "Q")]),
    (T0, ["image", "video"], SlotError(0, 2), [("image", ""), ("video", ""), ("text", "Q")]),
    # one slot: any number of media there, in order; none drops it
    (T1, [], [("text", "Q "), ("text", " A")], [("text", "Q "), ("text", " A")]),
    (T1, ["video"], [("text", "Q "), ("video", ""), ("text", " A")], [("text", "Q "), ("video", ""), ("text", " A")]),
    (T1, ["image", "image", "audio"], [("text", "Q "), ("image", ""), ("image", ""), ("audio", ""), ("text", " A")],
     [("text", "Q "), ("image", ""), ("image", ""), ("audio", ""), ("text", " A")]),
    # several slots: exactly that many (the media's kinds, in order); none: dropped (API) / an error (file)
    (T2, [], [("text", " vs "), ("text", "?")], SlotError(2, 0)),
    (T2, ["image"], SlotError(2, 1), SlotError(2, 1)),
    (T2, ["video", "image"], [("video", ""), ("text", " vs "), ("image", ""), ("text", "?")],
     [("video", ""), ("text", " vs "), ("image", ""), ("text", "?")]),
    (T2, ["image"] * 3, SlotError(2, 3), SlotError(2, 3)),
])
def test_fill_slots_every_count(parts, kinds, api, file):
    for opts, want in ((API, api), (FILE, file)):
        if isinstance(want, SlotError):
            with pytest.raises(SlotError) as e:
                fill_slots(parts, kinds, **opts)
            assert (e.value.slots, e.value.media) == (want.slots, want.media)
            assert str(e.value) == f"the template has {want.slots} media slots, got {want.media} media"
        else:
            got = fill_slots(parts, kinds, **opts)
            assert got == want
            # ready for interleave: one media value per filled part, in order
            content = interleave(got, list(range(len(kinds))))
            assert [c.get("url") for c in content if c["type"] != "text"] == list(range(len(kinds)))


def test_slot_error_is_in_the_hierarchy_and_options_are_checked():
    assert issubclass(SlotError, FlexJudgeError) and issubclass(SlotError, ValueError)
    with pytest.raises(SlotError, match="the template has 2 media slots, got 1 media"):
        interleave(T2, ["one"])  # the lmms-eval tasks' path: docs' media match the template one to one
    with pytest.raises(ValueError, match="when_no_slot='first'"):
        fill_slots(T1, [], when_no_slot="first")
    with pytest.raises(ValueError, match="when_no_media='error'"):
        fill_slots(T1, [], when_no_media="error")


def _user(messages) -> list:
    return [c["type"] if c["type"] != "text" else c["text"] for c in messages[1]["content"]]


def test_build_messages_counts_and_errors():
    one = TASKS["flex_vl_rewardbench"]
    doc = {"query": "q", "answer0": "a", "answer1": "b", "flex_swap": False}
    assert all(isinstance(t, str) for t in _user(build_messages(one, doc, [])))  # no media: text only
    assert _user(build_messages(one, doc, [str(IMG)])).count("image") == 1
    got = _user(build_messages(one, doc, [str(IMG), Image.new("RGB", (8, 8)), str(IMG)]))
    assert got.count("image") == 3 and got[got.index("image"):got.index("image") + 3] == ["image"] * 3

    two = TASKS["flex_mj_bench_alignment"]
    doc2 = {"caption": "c", "flex_swap": False}
    assert "image" not in _user(build_messages(two, doc2, []))
    assert _user(build_messages(two, doc2, [str(IMG), str(IMG)])).count("image") == 2
    for n in (1, 3):
        with pytest.raises(JudgeInputError, match=f"^flex_mj_bench_alignment: the protocol template has 2 media "
                                                  f"slots, got {n} media$"):
            build_messages(two, doc2, [str(IMG)] * n)
    # the count is checked before any media is read: a missing file in a bad count is the count's error
    with pytest.raises(JudgeInputError, match="2 media slots, got 1"):
        build_messages(two, doc2, ["missing.png"])

    none = dataclasses.replace(one, user="Q: {query}")
    assert _user(build_messages(none, doc, [])) == ["Q: q"]
    with pytest.raises(JudgeInputError, match="^flex_vl_rewardbench: the protocol template has 0 media slots, got 1"):
        build_messages(none, doc, [str(IMG)])


def _template(user: str, media: list):
    t = Template(system="S", user=user)
    return _user(template_request(t, TASKS["flex_mllm_judge_pair"], {}, "q", ["a", "b"], media, "pair").messages)


def test_template_request_counts_and_errors():
    assert _template("Q: {question}", []) == ["Q: q"]
    assert _template("Q: {question}", [str(IMG), str(IMG)]) == ["image", "image", "Q: q"]  # media first
    assert _template(f"{{question}}{VIS}A", []) == ["q", "A"]
    assert _template(f"{{question}}{VIS}A", [str(IMG), str(IMG)]) == ["q", "image", "image", "A"]
    assert _template(f"{VIS}{{response_a}}{VIS}{{response_b}}", [str(IMG), str(IMG)]) == ["image", "a", "image", "b"]
    for n in (0, 1, 3):
        with pytest.raises(RowError, match=f"^the template has 2 media slots, the row {n} media$"):
            _template(f"{VIS}{{response_a}}{VIS}", ["missing.png"] * n)


def test_prompts_keeps_the_task_path():
    """The lmms-eval task path is unchanged: its docs' media fill the template's slots one to one."""
    spec = TASKS["flex_mj_bench_alignment"]
    msgs = prompts.messages(spec, {"caption": "c", "flex_swap": False}, ["x", "y"])
    assert [c.get("url") for c in msgs[1]["content"] if c["type"] == "image"] == ["x", "y"]
