"""Why the networks predict what they do: relevance maps, their group statistics and their
validation against the simulated truth (``workflow/rules/interpret.smk``)."""
