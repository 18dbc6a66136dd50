"""Running trials on Ray Tune: the Ray session (``session``), the worker function that runs one trial and
records it (``worker``), what a trial and the driver say to each other through Tune (``messages``), the
driver's callbacks for progress and the MLflow mirror (``callbacks``), and one Tune experiment per wave of
trials or per searched grid point (``waves``)."""
