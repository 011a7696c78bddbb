"""Cluster metadata kept in Apache ZooKeeper (cluster mode)."""
