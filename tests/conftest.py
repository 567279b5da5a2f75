"""Shared test settings: one torch/BLAS thread (two cores, several test workers) and quiet rendering."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
