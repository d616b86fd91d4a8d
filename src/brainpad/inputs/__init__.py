"""Stage ``inputs`` (``workflow/rules/inputs.smk``): BIDS discovery, participants and sessions
tables, image checks, and the validated manifest (``brainpad validate``).
"""
