"""The environment of a child lmms-eval / flex-judge process in the tests: the bundled fixtures,
FLEX_JUDGE_RUNS runs, offline, one thread, and none of a launcher's rank variables or a journal
path inherited from the shell that runs pytest."""
import os

LAUNCH_VARS = ("FLEX_JUDGE_JOURNAL", "WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def fixture_env(**extra) -> dict:
    env = dict(os.environ, FLEX_JUDGE_DATA="fixtures", FLEX_JUDGE_RUNS="2", HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    for k in LAUNCH_VARS:
        env.pop(k, None)
    env.update(extra)
    return env
