"""Evaluate weights: ``python tools/test.py CONFIG WEIGHTS [--metrics-out FILE.json] [--cfg-options ...]``."""
from hulk_mm.engine.launch import test

if __name__ == '__main__':
    test()
