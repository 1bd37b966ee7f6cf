"""Quality: metrics, evaluation on the history and on benchmarks, tuning, plots, supply and its gaps.

``metrics`` (one function per ranking metric, bootstrap intervals), ``results`` (the evaluation table),
``baseline`` (plain character TF-IDF), ``history`` (the time split of the decisions), ``known_item``
(finding a target by its name), ``benchmark`` (an external labelled benchmark), ``tune`` (grid search),
``plots`` (the PNG charts), ``supply`` (demand against supply, counted) and ``gaps`` (weakly matched
needs, scored by the model).
"""
