"""One trial: its config, the check of its inputs, its context, ``run_trial``, the result and the
reporter it tells its caller through, and its command line."""
