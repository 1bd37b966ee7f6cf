"""Jobs over whole libraries: training, batch scoring, assignment within capacity, event planning."""
