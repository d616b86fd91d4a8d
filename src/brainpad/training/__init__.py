"""Stage ``training`` (``workflow/rules/training.smk``): one training loop and one inference
path for every model of :mod:`brainpad.models` (``brainpad train``).
"""
