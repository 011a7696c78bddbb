"""Stands in for hypothesis inside test brokers: see ``tests.support.broker.broker_env``."""

raise ImportError("hypothesis is hidden from test brokers, as it is absent from a user's")
