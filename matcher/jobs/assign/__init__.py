"""``matcher assign``: the job, its feasibility report, the solver and booking into the database."""
