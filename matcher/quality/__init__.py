"""Quality: metrics, evaluation on the history and on benchmarks, tuning, descriptive statistics."""
