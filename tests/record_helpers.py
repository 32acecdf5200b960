"""Records for tests: a typed flex_tasks.record.Record with the fields a test does not care
about filled in (the library's Record has no defaults: make_record sets every field)."""
from flex_tasks.record import GROUP_KEYS, Record


def rec(item=0, run=0, pred=None, gold=None, ok=True, *, task="t", seed=None, swap=False, raw="", how=None,
        data_id=None, **group) -> Record:
    unknown = set(group) - set(GROUP_KEYS)
    assert not unknown, unknown
    return Record(task=task, item=item, run=run, seed=run if seed is None else seed, swap=swap, raw=raw, pred=pred,
                  ok=ok, how=how or ("answer" if ok else "fallback"), gold=gold, group=group, data_id=data_id)
