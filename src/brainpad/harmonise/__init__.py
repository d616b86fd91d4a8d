"""Site harmonisation: ComBat fitted on healthy controls, and sites the fit never saw."""
