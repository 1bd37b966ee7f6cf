"""Jobs over whole libraries: batch scoring, assignment within capacity, event planning."""
