"""nbval collects every notebook here except 06_benchmark: tests/test_notebooks.py runs it with papermill (the
way colab/run_batch.py runs it, parameters injected) and checks its artifact and plots. Executing it under nbval
as well ran the same smoke benchmark twice (~2 minutes each on a 2-core CPU)."""

collect_ignore = ["06_benchmark.ipynb"]
