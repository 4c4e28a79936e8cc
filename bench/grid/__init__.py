"""Many runs: a grid in local child processes (:mod:`.runner`) or as Ray tasks (:mod:`.ray_runner`),
tuning before the final runs (:mod:`.tune`), and the machine-wide registry of live runs (:mod:`.live`)."""
