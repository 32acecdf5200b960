"""Analysis of finished runs: loading them (runs), the paper's tables (leaderboard), per-item judge
comparison (compare) and its plots."""
