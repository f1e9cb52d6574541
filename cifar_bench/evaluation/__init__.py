"""Evaluated runs: run folders, evaluate, predict, compare, analyze and their statistics."""
