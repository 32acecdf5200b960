"""NISQA: one audio clip (VoxSim: two) and the protocol's fixed question; the answer is a score
parsed by the protocol's parser (with its fallback value, counted as a parse failure)."""
from flex_tasks.benchmarks import Benchmark

BENCHMARK = Benchmark("nisqa")
