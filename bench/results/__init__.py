"""The results contract: run records and their schema (:mod:`.records`), the metric registry
(:mod:`.metrics`) and the results folder's life (:mod:`.folder`). ``reports`` reads these and
nothing that trains."""
