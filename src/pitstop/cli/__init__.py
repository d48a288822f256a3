"""The ``pitstop`` command line: a thin adapter over :class:`pitstop.FeatureStore`."""
