"""The lmms-eval task class of the flex YAMLs (``class:`` in each task YAML).

lmms-eval's chat task, with one change: ``--limit N`` counts *items*, not docs. Docs are
(item, run) pairs in item-major order (contract 2), so lmms-eval's own doc count would judge
the first item N times; here the first N items are judged with all their runs.

How: lmms-eval hands the task its limit as a doc count when it builds requests and when it
iterates docs; both are scaled by the run count here. lmms-eval's default post-processing
does not ask the task which docs it judged (it slices the docs itself), so with a limit the
task switches it to the path that does (``--process_with_media``): results are the same for
every task of the run, only post-processing reads the media again. ``--limit 0.1`` is turned
into a doc count by lmms-eval before the task sees it: give flex tasks an integer limit. The
results' ``n-samples`` keep lmms-eval's reading of the limit; ``n_items`` / ``n_runs`` in the
results say what was judged.
"""
from __future__ import annotations

from lmms_eval.api.task import ConfigurableMessagesTask


class FlexTask(ConfigurableMessagesTask):
    def __init__(self, config=None, **kwargs):
        # lmms-eval passes the YAML's own `class` key along; TaskConfig does not take it
        super().__init__(config={k: v for k, v in (config or {}).items() if k != "class"}, **kwargs)

    def runs_per_item(self) -> int:
        items = self.eval_docs["flex_item"]
        return max(1, len(items) // max(1, len(set(items))))

    def _doc_limit(self, limit):
        return int(limit) * self.runs_per_item() if limit else limit

    def doc_iterator(self, *, rank=0, limit=None, world_size=1, offset=0):
        return super().doc_iterator(rank=rank, limit=self._doc_limit(limit), world_size=world_size, offset=offset)

    def build_all_requests(self, *, limit=None, **kwargs):
        cli_args = getattr(self, "args", None)  # lmms-eval sets task.args = its CLI namespace before this call
        if limit and cli_args is not None and hasattr(cli_args, "process_with_media"):
            cli_args.process_with_media = True  # post-process through doc_iterator (above), not a doc slice
        return super().build_all_requests(limit=self._doc_limit(limit), **kwargs)
