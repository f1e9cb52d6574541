"""``cifar-bench sweep``: a model's recipe searched with Optuna, judged on validation accuracy alone.

space.py reads a search space file, storage.py opens Optuna's storage and the study (shared by every
worker), trial.py runs one trial as an ordinary fit, outputs.py writes what a sweep leaves, command.py
is the command.
"""
