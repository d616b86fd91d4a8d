"""Stage ``local`` (``workflow/rules/local.smk``): study 1's voxelwise brain-age maps, their
bias correction, statistics, planted-effect check and truth validation.
"""
