"""The ledger, the sweep's source of truth: one record per trial (``records``), kept with its checkpoints
in the sweep's storage (``store``), and the lease that lets one driver at a time run the sweep (``lease``)."""
