"""Stage ``report`` (``workflow/rules/report.smk``): the report's figures
(``brainpad report``, ``brainpad local-figure``).
"""
