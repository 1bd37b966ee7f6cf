"""Jobs over whole libraries: batch scoring, assignment within capacity, event planning.

``sources`` reads the database mode's inputs, ``chunks`` runs the chunked scoring loop on an engine
of ``executors``, ``output`` writes the files; ``batch``, ``assign`` and ``planning`` are the jobs.
"""
