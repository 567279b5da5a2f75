"""Algorithms, one file each; ``registry.py`` lists them."""

from marlkit.algorithms.registry import AlgoSpec, algo_spec, list_algos, register_algo

__all__ = ["AlgoSpec", "algo_spec", "list_algos", "register_algo"]
