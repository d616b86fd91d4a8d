"""Stage ``ensemble`` (``workflow/rules/ensemble.smk``): stacking of the models' predictions
and the global bias correction of brain-PAD (``brainpad ensemble``).
"""
