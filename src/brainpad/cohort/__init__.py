"""Stage ``cohort`` (``workflow/rules/cohort.smk``): roles and cross-validation folds, the
memory-mapped image arrays and the Harvard-Oxford ROI volumes of every scan.
"""
