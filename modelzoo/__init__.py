"""modelzoo: generate, store and load model zoos (populations of trained networks used as data)."""

__version__ = "0.1.0"
