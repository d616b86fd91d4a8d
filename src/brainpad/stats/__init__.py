"""Stage ``stats`` (``workflow/rules/stats.smk``): accuracy and group comparisons of
brain-PAD (``brainpad stats``).
"""
