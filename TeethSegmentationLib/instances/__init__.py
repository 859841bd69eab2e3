"""Single teeth from the networks' probabilities: splitting touching teeth, and FDI numbers along the arch."""
